"""Set generation: pick the test images the source gets right, attack them in batches, keep the
successes and stream them to the workspace.

Images are NCHW float32 in [0, 1] throughout; models normalise internally.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from robench import store
from robench.attacks.contract import AttackOutput, Extras
from robench.attacks.registry import (
    BACKENDS,
    Backend,
    MethodSpec,
    check_channels,
    method_spec,
    name_suffix,
    resolve_backend,
    resolve_params,
)
from robench.checks import checked
from robench.context import takes_context
from robench.datasets import resolve_dataset
from robench.errors import RobenchError
from robench.events import Callback
from robench.models import EnsembleNet, load_model
from robench.records import ModelRecord, SetRecord, SourceRef
from robench.runtime import (
    check_precision,
    compile_model,
    environment,
    frozen,
    in_precision,
    pick_device,
    prepare,
    to_device,
)

log = logging.getLogger(__name__)

DEFAULT_N = 5000
TARGET_MODES = ("random", "least-likely")


# ---------------------------------------------------------------- one batch


def _net(model: nn.Module, precision: str = "fp32", compile: bool = False) -> nn.Module:
    """The model as the attack and the kept-example check both see it: under autocast to ``precision`` (fp32:
    the model itself), through torch.compile when asked. Every backend gets this module."""
    net = in_precision(model, precision)
    return compile_model(net) if compile else net


@contextlib.contextmanager
def _frozen(model: nn.Module) -> Iterator[nn.Module]:
    """The model in eval mode with weights frozen (attacks then skip weight gradients), restored after.

    Every submodule's mode is restored as it was (a wrapper made for the attack starts in training mode; its
    flag must not spread to the model inside).
    """
    flags = [p.requires_grad for p in model.parameters()]
    modes = [(m, m.training) for m in model.modules()]
    try:
        yield frozen(model)
    finally:
        for p, flag in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(flag)
        for m, mode in modes:
            m.training = mode


@contextlib.contextmanager
def seeded(seed: int | None, device: torch.device | None = None) -> Iterator[None]:
    """Seed the global RNGs the backends draw from (torch: Foolbox and noise; numpy and random: ART) for the
    block only.

    The caller's torch (CPU, and ``device`` when it is a GPU), numpy and ``random`` states are restored
    afterwards, so attacking never changes a notebook's random state. ``seed=None`` leaves the RNGs alone.
    """
    if seed is None:
        yield
        return
    devices = [device] if device is not None and device.type == "cuda" else []
    np_state, py_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)


def _run(backend: Backend, spec: MethodSpec, net: nn.Module, images: torch.Tensor, labels: torch.Tensor,
         params: dict) -> AttackOutput:
    """``spec``'s Attack on ``backend`` run on one batch of ``net`` (see :func:`_net`): images (N, C, H, W) float32
    in [0,1] on the input's device, plus extras."""
    attack = spec.attack(backend.name)
    with _frozen(net):
        out = AttackOutput.of(attack.run(net, images, labels, params))
    out.adv = out.adv.to(images.device, torch.float32).clamp_(0.0, 1.0)
    return out


def perturb(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, method: str, backend: str | None = None,
            *, seed: int | None = None, targets: torch.Tensor | None = None, precision: str = "fp32",
            **params: Any) -> torch.Tensor:
    """Attack one batch: adversarial images (N, C, H, W) float32 in [0,1], no filtering.

    ``images`` (N, C, H, W) in [0,1] and ``labels`` (N,) int64 go to the model's device;
    ``params`` are the method's parameters (``eps``, ``step``, ``steps``, ...; pixel units); ``targets`` (N,)
    makes the attack targeted (towards those labels). The model's forward passes run under autocast to
    ``precision`` (fp32: none).
    """
    return perturb_output(model, images, labels, method, backend, seed=seed, targets=targets, precision=precision,
                          **params).adv


def perturb_output(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, method: str,
                   backend: str | None = None, *, seed: int | None = None, targets: torch.Tensor | None = None,
                   precision: str = "fp32", **params: Any) -> AttackOutput:
    """Like :func:`perturb`, with the method's per-example extras (:class:`~robench.attacks.contract.Extras`):
    ``queries`` (N,) for query-based attacks, ``l2_trace`` (N, K) for the Boundary attack (L2 norm at each of
    ``convergence.checkpoints(steps)``)."""
    spec = method_spec(method)
    chosen = resolve_backend(spec, backend)
    resolved = resolve_params(spec, **params)
    net = _net(model, check_precision(precision))
    if targets is not None:
        _check_targeted(spec)
        resolved["targeted"], labels = True, targets
    device = next(model.parameters()).device
    with seeded(seed, device):
        return _run(chosen, spec, net, to_device(images.float(), device), labels.to(device), resolved)


# ---------------------------------------------------------------- targets


def _check_targeted(spec: MethodSpec) -> None:
    if not spec.targeted:
        from robench.attacks.registry import list_methods

        able = [m for m in list_methods() if method_spec(m).targeted]
        raise RobenchError(f"{spec.name} is untargeted only; --target works with {', '.join(able)}")


def parse_target(target: str | int | None, spec: MethodSpec, num_classes: int) -> str | None:
    """The target mode: None (untargeted), 'random', 'least-likely', or a class label as a string ('3')."""
    if target is None or (isinstance(target, str) and not target.strip()):
        return None
    _check_targeted(spec)
    text = str(target).strip().lower()
    if text in TARGET_MODES:
        return text
    try:
        label = int(text)
    except ValueError:
        raise RobenchError(f"--target must be random, least-likely or a class label, got '{target}'") from None
    if not 0 <= label < num_classes:
        raise RobenchError(f"--target {label} is out of range: the source's dataset has classes 0 to {num_classes - 1}")
    return str(label)


@torch.no_grad()
def pick_targets(mode: str, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, num_classes: int,
                 generator: torch.Generator) -> torch.Tensor:
    """Target labels (N,) for images (N, C, H, W) with true labels (N,): 'random' draws uniformly among the other
    classes (from ``generator``), 'least-likely' takes the source's lowest logit, a label string that label."""
    if mode == "random":
        draw = torch.randint(0, num_classes - 1, (len(labels),), generator=generator).to(labels.device)
        return draw + (draw >= labels).long()
    if mode == "least-likely":
        return model(images).argmin(1)
    return torch.full_like(labels, int(mode))


@torch.inference_mode()
def _labels(net: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Predictions (N,) of ``net`` (see :func:`_net`: in the attack's precision) for images (N, C, H, W)."""
    return net(images).argmax(1)


# ---------------------------------------------------------------- sources and data


def load_sources(sources: str | list[str], workspace: str | os.PathLike | None,
                 device: torch.device) -> tuple[nn.Module, list[ModelRecord]]:
    """The source model (an EnsembleNet averaging logits when several) and each source's record."""
    names = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    if not names:
        raise RobenchError("no --source given; name at least one model from `robench models`")
    if len(set(map(str, names))) != len(names):
        raise RobenchError(f"a source is given twice in {', '.join(map(str, names))}; give each once")
    models = [load_model(name, workspace, device=device) for name in names]
    records: list[ModelRecord] = [m.robench_record for m in models]
    first = records[0]
    for rec in records[1:]:
        if not rec.dataset.same_data(first.dataset) or rec.dataset.shape != first.dataset.shape:
            raise RobenchError(f"sources {first.name} and {rec.name} were trained on different datasets "
                               f"({first.dataset.label} vs {rec.dataset.label}); use sources of one dataset")
    model = models[0] if len(models) == 1 else EnsembleNet(models)
    return prepare(model, device).eval(), records


def correct_batches(net: nn.Module, split, n: int, batch_size: int,
                    device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The first ``n`` test images ``net`` gets right, in order, as (indices, images, labels) batches.

    ``split`` is in memory or streamed (read through ``split.batches``: a streamed split is decoded only as far
    as needed)."""
    remaining = n
    for sl, x, y in split.batches(batch_size):
        x, y = to_device(x, device), y.to(device)
        right = (_labels(net, x) == y).nonzero().flatten()[:remaining]
        if len(right):
            yield torch.arange(sl.start, sl.stop, device=device)[right], x[right], y[right]
        remaining -= len(right)
        if remaining <= 0:
            return


# ---------------------------------------------------------------- sets


def default_set_name(source_names: list[str], spec: MethodSpec, params: dict, backend: str, seed: int, n: int,
                     target: str | None = None, precision: str = "fp32") -> str:
    """Readable default: ``densenet121-pgd-eps16``; ensembles join sources with '+'; non-defaults appended
    (``-targeted-random`` for a targeted set, ``-art``, ``-seed1``, ``-n500``, ``-bf16``)."""
    parts = ["+".join(source_names), name_suffix(spec, params)]
    parts += [f"targeted-{target}"] if target else []
    parts += [backend] if backend != spec.default_backend else []
    parts += [f"seed{seed}"] if seed else []
    parts += [f"n{n}"] if n != DEFAULT_N else []
    parts += [precision] if precision != "fp32" else []
    return "-".join(parts)


def _environment(backend: Backend) -> dict:
    return {**environment(), backend.name: backend.version(), "numpy": np.__version__}


def _check_n(n: int, batch_size: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise RobenchError(f"--n must be a positive number of test images, got {n}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise RobenchError(f"--batch-size must be a positive integer, got {batch_size}")


@checked
@takes_context
def attack(
    sources: str | list[str],
    method: str = "pgd",
    *,
    backend: str | None = None,
    eps: float | str | None = None,
    step: float | str | None = None,
    steps: int | None = None,
    n: int = DEFAULT_N,
    seed: int = 0,
    name: str | None = None,
    workspace: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
    device: str | None = None,
    batch_size: int = 256,
    precision: str = "fp32",
    compile: bool = False,
    workers: int | None = None,
    callback: Callback | None = None,
    target: str | int | None = None,
    **method_params: Any,
) -> SetRecord:
    """Generate an adversarial set from the source model(s) and save it in the workspace.

    Attacks the first ``n`` test images the source classifies correctly and keeps those that fool
    it. ``eps``/``step`` are pixel units in [0, 1] (``16/255`` or ``0.0627``; L2 norms under ``norm="l2"``).
    Several sources make an ensemble source (logits averaged). ``target`` ('random', 'least-likely' or a
    class label) makes a targeted set: it keeps the examples the source classifies as their target and stores
    the targets (``AdvSet.extra["targets"]``); with a label, test images of that class are skipped.
    ``precision`` (fp32, bf16, fp16) is the autocast dtype of every forward pass: the attack's, and the checks
    of which images the source gets right and which adversarial ones fool it (or reach their target), so the
    kept examples are decided in the precision the set records. ``compile`` runs the source through
    torch.compile. ``workers``: DataLoader workers that decode a streamed folder's test images (default: from
    the core count). Returns the set's record (see ``robench.load_set``).
    """
    started = time.time()
    spec = method_spec(method)
    chosen = resolve_backend(spec, backend)
    params = resolve_params(spec, eps=eps, step=step, steps=steps, **method_params)
    _check_n(n, batch_size)
    check_precision(precision)
    if target is not None:
        _check_targeted(spec)
    dev = pick_device(device)
    model, records = load_sources(sources, workspace, dev)
    check_channels(spec, chosen, records[0].dataset.in_channels)
    mode = parse_target(target, spec, records[0].dataset.num_classes)
    if mode:
        params.update(targeted=True, target=mode)
    name = store.check_name(name or default_set_name([r.name for r in records], spec, params, chosen.name, seed, n,
                                                     mode, precision))
    emit = callback or (lambda kind, payload: None)
    with store.SetWriter(store.set_dir(name, workspace), overwrite=overwrite) as writer:
        data = resolve_dataset(records[0].dataset, data_dir, workers=workers)
        total = min(n, len(data.test))
        emit("start", {"name": name, "label": name, "total": total, "done": 0, "method": spec.name,
                       "backend": chosen.name})
        aim = _Aim(mode, data.ref.num_classes, seed) if mode else None
        with seeded(seed, dev), _frozen(model):  # frozen for the whole run: a compiled source sees one set of flags
            net = _net(model, precision, compile)
            attempted, kept_extra = _generate(net, data.test, spec, chosen, params, writer, n, batch_size, dev,
                                              emit, aim)
        if attempted == 0:
            raise RobenchError(f"the source gets none of the first {len(data.test)} test images right; "
                               f"check that it is trained")
        record = SetRecord(
            name=name, sources=[SourceRef.of(r) for r in records], dataset=data.ref, method=spec.name,
            backend=chosen.name, backend_version=chosen.version(), params=params, seed=seed, n_requested=n,
            attempted=attempted, success_rate=writer.count / attempted, batch_size=batch_size, device=str(dev),
            target=mode, precision=precision, wall_time_s=round(time.time() - started, 3),
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"), versions=_environment(chosen),
            stats=spec.summarise(kept_extra, params, data.test.shape) if spec.summarise else {},
        )
        record = writer.finish(record)
    log.info("saved set %s: %d of %d fooled the source (%.1f%%)", name, record.n, attempted,
             100 * record.success_rate)
    emit("end", {"attempted": record.attempted, "done": record.attempted, "n": record.n, "name": record.name})
    return record


class _Aim:
    """The targets of a targeted set: the mode, the number of classes and a seeded generator for 'random'."""

    def __init__(self, mode: str, num_classes: int, seed: int) -> None:
        self.mode, self.num_classes = mode, num_classes
        self.generator = torch.Generator().manual_seed(seed)

    def batch(self, model: nn.Module, idx: torch.Tensor, x: torch.Tensor,
              y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(indices, images, labels, targets) of a batch, without the images already of a fixed target class."""
        if self.mode not in TARGET_MODES:
            other = y != int(self.mode)
            idx, x, y = idx[other], x[other], y[other]
        return idx, x, y, pick_targets(self.mode, model, x, y, self.num_classes, self.generator)


def _generate(net: nn.Module, split, spec: MethodSpec, backend: Backend, params: dict,
              writer: store.SetWriter, n: int, batch_size: int, device: torch.device, emit: Callback,
              aim: _Aim | None = None) -> tuple[int, Extras]:
    """Attack batch after batch and write the successes (for a targeted set: the examples that reach their
    target); returns how many images were attempted and the kept examples' extras (on the CPU, for
    ``MethodSpec.summarise``). ``net`` is the source in the set's precision (:func:`_net`): it picks the correct
    images (and least-likely targets), is attacked, and judges success."""
    attempted, t0, kept = 0, time.perf_counter(), []
    for idx, x, y in correct_batches(net, split, n, batch_size, device):
        targets = None
        if aim is not None:
            idx, x, y, targets = aim.batch(net, idx, x, y)
            if not len(y):
                continue
        out = _run(backend, spec, net, x, y if targets is None else targets, params)
        adv = out.adv
        pred = _labels(net, adv)
        fooled = pred != y if targets is None else pred == targets
        extra = {**out.extra.as_dict(), **({"targets": targets} if targets is not None else {})}
        delta = (adv - x)[fooled].flatten(1)
        writer.add({"adv": adv[fooled], "clean": x[fooled], "labels": y[fooled], "source_pred": pred[fooled],
                    "indices": idx[fooled], "l2": delta.norm(dim=1), "linf": delta.abs().amax(1),
                    **{k: v[fooled] for k, v in extra.items()}})
        kept.append(out.extra.map(lambda v, fooled=fooled: v[fooled].cpu()))
        attempted += len(y)
        emit("batch", {"attempted": attempted, "done": attempted, "kept": writer.count,
                       "images_per_s": attempted / max(time.perf_counter() - t0, 1e-9)})
    return attempted, Extras.cat(kept)


@takes_context
def list_sets(workspace: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per saved set: name, sources, method, backend, eps, norm, steps, target mode, dataset, counts,
    success rate; ``median_queries`` is the median of the queries the kept examples used (query-based attacks)."""
    from robench.workspace import sets_frame

    return sets_frame(workspace)


__all__ = ["BACKENDS", "TARGET_MODES", "attack", "correct_batches", "default_set_name", "list_sets", "load_sources",
           "parse_target", "perturb", "perturb_output", "pick_targets"]
