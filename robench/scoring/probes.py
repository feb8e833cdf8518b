"""The papers' other scores: Boundary-attack score, Gaussian-noise curve, patch shuffle, keep trade-off.

Every score here is a tidy pandas DataFrame (one row per model, or per model and severity).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from robench import store
from robench.attacks.convergence import Trace, checkpoints, trace
from robench.attacks.noise import CIFAR10C_SIGMAS, gaussian_noise
from robench.attacks.registry import method_spec, resolve_params
from robench.checks import checked
from robench.context import takes_context
from robench.datasets.splits import STREAM_CHUNK, images_at
from robench.errors import RobenchError
from robench.events import emitter
from robench.records import AttackParams, ModelConfig, SetRecord
from robench.scoring.matrix import Callback, Patterns, Scorer, matrix, select
from robench.stats import CI_LEVEL, add_rate_ci, check_ci

log = logging.getLogger(__name__)

DEFAULT_SIGMAS = (0.0, *CIFAR10C_SIGMAS)
DEFAULT_KS = (2, 4, 8)
BOUNDARY_MODES = ("auto", "sets", "attack")


# ---------------------------------------------------------------- shared


def _one_dataset(scorer: Scorer, names: list[str]) -> str:
    """The dataset all ``names`` were trained on; models from several datasets cannot be compared."""
    refs = {n: scorer.record(n).dataset for n in names}
    first = refs[names[0]]
    if any(not r.same_data(first) or r.shape != first.shape for r in refs.values()):
        listing = ", ".join(f"{n} ({r.label})" for n, r in refs.items())
        raise RobenchError(f"these models come from different datasets: {listing}; pass --models to pick one dataset")
    return names[0]


def common_correct(scorer: Scorer, names: list[str]) -> torch.Tensor:
    """Test indices (sorted, int64) that every model in ``names`` classifies correctly."""
    data = scorer.dataset(_one_dataset(scorer, names))
    ok = torch.ones(len(data.test), dtype=torch.bool)
    for n in names:
        ok &= scorer.clean_predictions(n) == data.test.labels
    return ok.nonzero().flatten()


def _samples(scorer: Scorer, names: list[str], n: int | None, common: bool, seed: int) -> torch.Tensor:
    """Test indices to evaluate: those every model gets right (or all), then a seeded random subset of n."""
    data = scorer.dataset(_one_dataset(scorer, names))
    idx = common_correct(scorer, names) if common else torch.arange(len(data.test))
    if not len(idx):
        raise RobenchError("no test image is classified correctly by every chosen model; pass fewer --models")
    if n is not None and n < len(idx):
        pick = torch.randperm(len(idx), generator=torch.Generator().manual_seed(seed))[:n]
        idx = idx[pick.sort().values]
    return idx


# ---------------------------------------------------------------- Gaussian noise


Corruption = Callable[[torch.Tensor, Any, torch.Generator], torch.Tensor]


def _corruption_curve(column: str, values: Sequence, corrupt: Corruption, models: Patterns, workspace,
                      n: int | None, common: bool, seed: int, device: str | None,
                      data_dir, callback: Callback | None, precision: str = "fp32",
                      workers: int | None = None, ci: str = "wilson", ci_level: float = CI_LEVEL) -> pd.DataFrame:
    """Accuracy of every model on ``corrupt(images, value, generator)`` for each severity value.

    The images are the test images every model classifies correctly (``common``), capped at ``n``; every model
    sees the same corrupted images (one generator seeded with ``seed`` per value). A streamed test split is
    decoded and corrupted a chunk at a time, so memory stays bounded whatever the number of images. Predictions
    run under autocast to ``precision``. Columns: model, column, accuracy, n, precision, and the ``ci_level``
    interval of the accuracy by ``ci`` (ci_low, ci_high; see :mod:`robench.stats`), which is conditional on the
    chosen images.
    """
    check_ci(ci, ci_level)
    scorer = Scorer(workspace, device, data_dir, precision=precision, workers=workers)
    names = select(store.list_model_names(workspace), models, "model", workspace)
    data = scorer.dataset(_one_dataset(scorer, names))
    emit = emitter(callback)
    emit("start", {"label": f"{column} curve", "total": len(names) * (1 + len(values)), "done": 0})
    for done, name in enumerate(names, 1):  # clean test predictions (cached on disk), to pick the samples
        scorer.clean_predictions(name)
        emit("step", {"done": done, "model": name, "info": f"{name} clean"})
    idx = _samples(scorer, names, n, common, seed)
    generators = {value: torch.Generator().manual_seed(seed) for value in values}
    correct = {(name, value): 0 for value in values for name in names}
    chunks = 1 if data.test.in_memory else max(1, math.ceil(len(idx) / STREAM_CHUNK))
    done = float(len(names))
    for images, labels in images_at(data.test, idx):
        for value in values:
            corrupted = corrupt(images, value, generators[value])
            for name in names:
                correct[name, value] += int((scorer.predict(name, corrupted) == labels).sum())
                done += 1 / chunks
                emit("step", {"done": done, "model": name, column: value, "info": f"{name} {column}={value:g}"})
    rows = [{"model": name, column: value, "accuracy": correct[name, value] / len(idx), "n": len(idx),
             "precision": scorer.precision} for value in values for name in names]
    emit("end", {"done": len(names) * (1 + len(values))})
    return add_rate_ci(pd.DataFrame(rows, columns=["model", column, "accuracy", "n", "precision"]), "accuracy", "",
                       ci, ci_level)


@checked
@takes_context
def noise_curve(
    models: Patterns = "*",
    workspace: str | os.PathLike | None = None,
    *,
    sigmas: Sequence[float] | None = None,
    n: int | None = None,
    common: bool = True,
    seed: int = 0,
    device: str | None = None,
    data_dir: str | os.PathLike | None = None,
    callback: Callback | None = None,
    precision: str = "fp32",
    workers: int | None = None,
    ci: str = "wilson",
    ci_level: float = CI_LEVEL,
) -> pd.DataFrame:
    """Accuracy under additive Gaussian noise N(0, sigma^2) (clipped to [0,1]) per model and sigma.

    Evaluated on the test images every model classifies correctly (``common=True``, so sigma 0 gives 1.0), or
    on the whole test split (``common=False``: sigma 0 gives the clean accuracy); ``n`` caps the sample count.
    Every model sees the same noisy images (one seeded generator per sigma). Columns: model, sigma, accuracy, n,
    precision (the autocast dtype of the predictions), ci_low, ci_high (the accuracy's ``ci_level`` interval by
    ``ci``).
    """
    def noisy(images: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
        if sigma < 0:
            raise RobenchError(f"noise sigma must be >= 0, got {sigma}")
        return gaussian_noise(images, sigma, generator)

    values = [float(s) for s in (DEFAULT_SIGMAS if sigmas is None else sigmas)]
    return _corruption_curve("sigma", values, noisy, models, workspace, n, common, seed, device, data_dir, callback,
                             precision, workers, ci, ci_level)


# ---------------------------------------------------------------- patch shuffle


def patch_shuffle(images: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Cut each image (N, C, H, W) into a k-by-k grid of patches and permute them (one permutation per image).

    H and W must be multiples of k; k = 1 returns the images unchanged. Returns (N, C, H, W).
    """
    n, c, h, w = images.shape
    if k < 1 or h % k or w % k:
        raise RobenchError(f"patch shuffle needs k >= 1 dividing the image size {h}x{w}, got k={k}")
    ph, pw = h // k, w // k
    patches = images.reshape(n, c, k, ph, k, pw).permute(0, 2, 4, 1, 3, 5).reshape(n, k * k, c, ph, pw)
    order = torch.rand(n, k * k, generator=generator).argsort(1).to(images.device)
    shuffled = patches[torch.arange(n, device=images.device)[:, None], order]
    return shuffled.reshape(n, k, k, c, ph, pw).permute(0, 3, 1, 4, 2, 5).reshape(n, c, h, w)


@checked
@takes_context
def shuffle_curve(
    models: Patterns = "*",
    workspace: str | os.PathLike | None = None,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    n: int | None = None,
    common: bool = True,
    seed: int = 0,
    device: str | None = None,
    data_dir: str | os.PathLike | None = None,
    callback: Callback | None = None,
    precision: str = "fp32",
    workers: int | None = None,
    ci: str = "wilson",
    ci_level: float = CI_LEVEL,
) -> pd.DataFrame:
    """Accuracy on patch-shuffled test images (k x k grid, see :func:`patch_shuffle`) per model and k.

    On the test images every model classifies correctly (``common=True``). Columns: model, k, accuracy, n,
    precision, ci_low, ci_high (the accuracy's ``ci_level`` interval by ``ci``).
    """
    return _corruption_curve("k", [int(k) for k in ks], patch_shuffle, models, workspace, n, common, seed, device,
                             data_dir, callback, precision, workers, ci, ci_level)


# ---------------------------------------------------------------- Boundary score


def boundary_values(adv: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Per-sample ||adv - clean||_2^2 / (C*H*W), images (N, C, H, W) in [0,1]; returns (N,) float64."""
    diff = (adv.double() - clean.double()).flatten(1)
    return diff.pow(2).sum(1) / diff.shape[1]


def boundary_score(l2: torch.Tensor, pixels: int) -> float:
    """The papers' Boundary-attack score: median over samples of l2^2 / pixels (l2: (N,) L2 norms in [0,1] units).

    The median of an even count is the mean of the two middle values; an empty input gives NaN.
    """
    if len(l2) == 0:
        return math.nan
    return float(np.median(l2.double().pow(2).numpy() / pixels))


def _boundary_set(scorer: Scorer, name: str, workspace, sets: Patterns) -> SetRecord | None:
    """The record of the newest boundary set whose single source is model ``name`` (same weights), else None."""
    sha = scorer.record(name).weights_sha256
    names = store.list_set_names(workspace)
    found = []
    for s in select(names, sets, "set", workspace) if names else []:
        rec = store.read_set(s, workspace)
        if rec.method == "boundary" and len(rec.sources) == 1 and rec.sources[0].weights_sha256 == sha:
            found.append(rec)
    return max(found, key=lambda r: r.created, default=None)


def _boundary_attack(scorer: Scorer, name: str, n: int, seed: int, params: dict,
                     tick: Callable[[float, str], None]) -> tuple[torch.Tensor, Trace]:
    """Run the Boundary attack on up to n test images the model gets right: L2 norms (k,) of the successes and
    the score's trace over them (median at every doubling of steps, from the same run).

    ``tick(fraction, info)`` reports the fraction of the batches done."""
    try:
        from robench.attacks.generate import perturb_output
    except ImportError:
        raise RobenchError("the Boundary attack is not available in this install (robench.attacks is missing); "
                           "make a boundary set with `robench attack` and use --mode sets") from None
    idx = _samples(scorer, [name], n, True, seed)
    model = scorer.model(name)
    resolved = resolve_params(method_spec("boundary"), **params)
    norms, traces, pixels = [], [], None
    total, done = len(idx), 0
    for images, labels in images_at(scorer.dataset(name).test, idx, scorer.batch_size):
        tick(done / max(total, 1), f"{name}: Boundary attack on images {done + 1}-{done + len(labels)} of {total}")
        out = perturb_output(model, images, labels, "boundary", seed=seed, precision=scorer.precision, **params)
        adv = out.adv.cpu()
        fooled = scorer.predict(name, adv) != labels
        norms.append((adv[fooled] - images[fooled]).flatten(1).norm(dim=1))
        traces.append(out.extra.l2_trace.cpu()[fooled])
        pixels = images[0].numel()
        done += len(labels)
    l2_trace = torch.cat(traces) if traces else torch.empty(0, len(checkpoints(resolved["steps"])))
    tr = trace(l2_trace, checkpoints(resolved["steps"]), pixels or 1, resolved["tolerance"])
    return (torch.cat(norms) if norms else torch.empty(0)), tr


def _set_trace(record: SetRecord, tolerance: float | None) -> Trace | None:
    """The trace a boundary set recorded (None for sets made before robench recorded one)."""
    data = record.stats.trace
    return Trace.from_json(data, tolerance) if data else None


@checked
@takes_context
def boundary_scores(
    models: Patterns = "*",
    workspace: str | os.PathLike | None = None,
    *,
    mode: str = "auto",
    sets: Patterns = "*",
    n: int = 100,
    seed: int = 0,
    params: dict | None = None,
    device: str | None = None,
    data_dir: str | os.PathLike | None = None,
    callback: Callback | None = None,
    precision: str = "fp32",
    workers: int | None = None,
) -> pd.DataFrame:
    """Boundary-attack score per model: median over samples of ||delta||_2^2 / (C*H*W), images in [0,1].

    ``mode``: 'sets' reads the stored L2 norms of an existing boundary set whose single source is the model;
    'attack' runs the Boundary attack (``robench.attacks.perturb``, with ``params``: ``steps``, ``tolerance``,
    ...) on ``n`` test images the model classifies correctly; 'auto' uses a set when there is one, else attacks.
    Higher is more robust. ``precision``: the autocast dtype of the attack's forward passes (a set keeps the one
    it records). Columns: model, score, mean, n, from, steps, change, converged, reason, arch, keep, placement,
    precision; ``change`` is the relative drop of the median over the last doubling of steps, ``converged`` the
    verdict of :attr:`robench.attacks.convergence.Trace.converged` (None for a set recorded without a trace) and
    ``reason`` why not. ``df.attrs["trace"]`` holds the median at
    every doubling (columns model, steps, median, n); a model that has not converged is also logged as a warning.
    """
    if mode not in BOUNDARY_MODES:
        raise RobenchError(f"unknown boundary mode '{mode}': choose one of {', '.join(BOUNDARY_MODES)}")
    params = dict(params or {})
    resolve_params(method_spec("boundary"), **params)  # bad --steps / --tolerance fail before any work
    scorer = Scorer(workspace, device, data_dir, precision=precision, workers=workers)
    names = select(store.list_model_names(workspace), models, "model", workspace)
    emit = emitter(callback)
    emit("start", {"label": "boundary score", "total": len(names), "done": 0})
    rows, traces = [], []
    for i, name in enumerate(names):
        set_record = _boundary_set(scorer, name, workspace, sets) if mode != "attack" else None
        used = scorer.precision
        if set_record is not None:
            l2, origin, used = store.load_set(set_record.path).l2, f"set {set_record.name}", set_record.precision
            tr = _set_trace(set_record, AttackParams(params).tolerance)
        elif mode == "sets":
            raise RobenchError(f"no boundary set made against model '{name}' in {store.workspace_dir(workspace)}; "
                               f"make one with `robench attack --method boundary` or use --mode attack")
        else:
            def tick(fraction: float, info: str, i: int = i) -> None:
                emit("batch", {"done": i + fraction, "info": info})

            (l2, tr), origin = _boundary_attack(scorer, name, n, seed, params, tick), "attack"
        c, h, w = scorer.record(name).dataset.shape
        pixels = c * h * w
        values = l2.double().pow(2) / pixels
        if tr is not None:
            traces += [{"model": name, "steps": s, "median": m, "n": tr.n} for s, m in zip(tr.steps, tr.median,
                                                                                           strict=True)]
            if not tr.converged:
                log.warning("Boundary score of %s has not converged: %s; raise --steps", name, tr.reason)
        rows.append({"model": name, "score": boundary_score(l2, pixels),
                     "mean": float(values.mean()) if len(values) else math.nan, "n": len(l2), "from": origin,
                     "steps": tr.steps[-1] if tr else None, "change": tr.change if tr else None,
                     "converged": tr.converged if tr else None, "reason": tr.reason if tr else "no trace recorded",
                     **scorer.model_columns(name), "precision": used})
        emit("step", {"done": i + 1, "model": name, "origin": origin, "info": f"{name}: {origin}"})
    df = pd.DataFrame(rows, columns=["model", "score", "mean", "n", "from", "steps", "change", "converged", "reason",
                                     "arch", "keep", "placement", "precision"])
    df.attrs["trace"] = pd.DataFrame(traces, columns=["model", "steps", "median", "n"])
    return df


# ---------------------------------------------------------------- keep trade-off


def check_family(configs: dict[str, ModelConfig]) -> None:
    """Raise unless the models (name -> construction config) differ only in keep (and seed / mask draw)."""
    first = next(iter(configs))
    defective = [n for n, c in configs.items() if not c.is_standard]
    pairs = [(first, n, False) for n in configs] + [(defective[0], n, True) for n in defective]
    for a, b, defects in pairs:
        diff = configs[a].difference(configs[b], defects)
        if diff:
            k, va, vb = diff
            raise RobenchError(f"models '{a}' and '{b}' differ in more than keep ({k}: {va} vs {vb}); "
                               f"pass --models to pick one family")


@checked
@takes_context
def tradeoff(
    set_name: str,
    models: Patterns = "*",
    workspace: str | os.PathLike | None = None,
    *,
    device: str | None = None,
    data_dir: str | os.PathLike | None = None,
    callback: Callback | None = None,
    precision: str = "fp32",
    workers: int | None = None,
) -> pd.DataFrame:
    """Defense rate against one set and clean accuracy, against keep, for models that differ only in keep.

    Columns: model, keep, clean_accuracy, defense_rate, agreement, n, relation, precision; sorted by keep.
    """
    names = select(store.list_model_names(workspace), models, "model", workspace)
    check_family({n: store.read_model(n, workspace).config for n in names})
    df = matrix(workspace, models=names, sets=[set_name], device=device, data_dir=data_dir, callback=callback,
                precision=precision, workers=workers)
    if df.empty:
        reasons = "; ".join(s["reason"] for s in df.attrs.get("skipped", []))
        raise RobenchError(f"no model could score set '{set_name}': {reasons}")
    out = df.rename(columns={"target": "model", "target_keep": "keep", "target_clean_accuracy": "clean_accuracy"})
    out = out[["model", "keep", "clean_accuracy", "defense_rate", "agreement", "n", "relation", "precision"]]
    return out.sort_values(["keep", "model"], ascending=[False, True]).reset_index(drop=True)
