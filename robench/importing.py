"""Bring your own model: put a classifier robench did not train into the workspace (``robench import``).

:func:`import_model` reads a SPEC (one parser, :func:`~robench.importers.parse_spec`; the importer registry
:mod:`robench.importers` holds one class per form, :data:`~robench.importers.FORMS`), builds the network, checks it
against the dataset (input channels, a forward pass on a dataset-shaped batch, finite outputs, the number of classes
or an explicit class map) and saves it as one module taking NCHW float32 in [0, 1]
(:class:`~robench.importers.wrapper.ImportedNet`: normalisation inside) with a :class:`~robench.records.ModelRecord`
of origin ``import``. After that it is an ordinary model: attack source, matrix target, every score.

``state-dict:FILE --arch ARCH`` stores a plain robench architecture, so a robench model exported as a state dict
and imported again gets byte-identical weights, the same sha256 and so counts as white-box against its original.
Files are never unpickled beyond ``torch.load(weights_only=True)``; ``python:MODULE:FUNCTION`` is the one form
that runs the user's Python code (at import and at every load).
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robench import store
from robench.checks import checked
from robench.context import takes_context
from robench.datasets import DatasetInfo, load_dataset
from robench.errors import RobenchError, UsageError
from robench.files import read_json
from robench.importers import Spec, arch_label, importer, parse_spec, reads_file
from robench.importers.programs import PROGRAM_JSON, PROGRAM_TS, sha256
from robench.importers.weights import fit_state, read_state_dict
from robench.importers.wrapper import check_channels, wrap_net
from robench.models import create_model
from robench.records import ImportDetails, ModelConfig, ModelRecord, Origin
from robench.runtime import environment, pick_device
from robench.training import evaluate as evaluate_accuracy

log = logging.getLogger(__name__)

CHECK_BATCH = 8  # images in the import-time forward check
__all__ = ["import_model", "read_class_map"]


# ---------------------------------------------------------------- checks


def _input_channels(net: nn.Module) -> int | None:
    """The input channels of the network's first convolution, when it shows them (scripted ones do too)."""
    for module in net.modules():
        channels = getattr(module, "in_channels", None)
        if isinstance(channels, int) and not isinstance(channels, bool):
            return channels
    return None


def _normalisation(mean: list[float] | None, std: list[float] | None, preset: tuple | None,
                   channels: int) -> tuple[list[float], list[float], str]:
    """(mean, std, where from): --mean/--std, else the weights' preset, else none (0 and 1)."""
    if mean is None or std is None:
        if preset is not None:
            return [float(v) for v in preset[0]], [float(v) for v in preset[1]], "weights preset"
        return [0.0], [1.0], "none"
    mean, std = [float(v) for v in mean], [float(v) for v in std]
    for label, values in (("--mean", mean), ("--std", std)):
        if len(values) not in (1, channels):
            raise RobenchError(f"{label} takes 1 or {channels} values (the model's input channels), got {len(values)}")
    if any(s <= 0 for s in std):
        raise RobenchError(f"--std values must be > 0, got {std}")
    return mean, std, "--mean/--std"


def _forward(model: nn.Module, data: DatasetInfo, hint: str = "") -> torch.Tensor:
    """Logits (n, K) of the model on the first test images; a failure, a wrong shape or NaN is a RobenchError."""
    x = data.test.floats(slice(0, CHECK_BATCH))
    shape = "x".join(map(str, x.shape))
    try:
        with torch.inference_mode():
            out = model.eval()(x)
    except Exception as err:
        first = str(err).strip().splitlines()[0][:160] if str(err).strip() else ""
        raise RobenchError(f"the model's forward pass fails on a batch of {shape} {data.ref.label} test images "
                           f"({type(err).__name__}: {first}){hint}") from None
    if not torch.is_tensor(out) or out.ndim != 2 or out.shape[0] != len(x):
        got = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
        raise RobenchError(f"the model returns {got} for a batch of {shape} images; robench needs logits of shape "
                           f"(N, classes)")
    if not torch.isfinite(out).all():
        raise RobenchError(f"the model's outputs on {len(x)} {data.ref.label} test images hold NaN or infinite "
                           f"values; check its weights and normalisation (--mean/--std)")
    return out.float()


def read_class_map(path: str | os.PathLike, model_classes: int, data: DatasetInfo) -> dict[int, int]:
    """{model output index: dataset label} from a JSON object ``{"<output index>": label index or class name}``.

    Every dataset label needs at least one model output; outputs not named are dropped.
    """
    raw = read_json(path)
    names = list(data.classes or [])
    mapping: dict[int, int] = {}
    for key, value in raw.items():
        try:
            output = int(key)
        except ValueError:
            raise RobenchError(f"class map {path}: key '{key}' is not a model output index") from None
        if not 0 <= output < model_classes:
            raise RobenchError(f"class map {path} names model output {output}; the model has {model_classes} "
                               f"outputs (0 to {model_classes - 1})")
        if isinstance(value, str) and value in names:
            label = names.index(value)
        elif isinstance(value, int) and not isinstance(value, bool) and 0 <= value < data.num_classes:
            label = value
        else:
            raise RobenchError(f"class map {path}: {value!r} (for output {output}) is neither a label index "
                               f"0-{data.num_classes - 1} nor a class name of {data.ref.label}")
        mapping[output] = label
    missing = sorted(set(range(data.num_classes)) - set(mapping.values()))
    if missing:
        raise RobenchError(f"class map {path} maps no model output to dataset label(s) {missing[:8]}; every label "
                           f"needs at least one")
    return mapping


# ---------------------------------------------------------------- import


def _exists_check(name: str, directory: Path, workspace: Any, overwrite: bool) -> None:
    store.check_target(directory, overwrite)
    if (directory / store.MODEL_META).exists() and not overwrite:
        raise RobenchError(f"model '{name}' already exists in {store.workspace_dir(workspace)}; pass --overwrite to "
                           f"replace it or choose another name")


def _refuse(given: dict[str, Any], why: str) -> None:
    used = [k for k, v in given.items() if v is not None and v is not False]
    if used:
        raise UsageError(f"{', '.join('--' + k.replace('_', '-') for k in used)} {why}")


@checked
@takes_context
def import_model(
    name: str,
    spec: str,
    *,
    dataset: str = "cifar10",
    data_dir: str | os.PathLike | None = None,
    workspace: str | os.PathLike | None = None,
    arch: str | None = None,
    mean: list[float] | None = None,
    std: list[float] | None = None,
    gray_to_rgb: bool = False,
    class_map: str | os.PathLike | None = None,
    threat_model: str | None = None,
    rb_dataset: str | None = None,
    evaluate: bool = True,
    overwrite: bool = False,
    device: str | None = None,
    **arch_options: Any,
) -> ModelRecord:
    """Import an outside model as workspace model ``name`` (see :data:`FORMS` for ``spec``) for ``dataset``.

    ``mean``/``std`` (1 or C values) normalise inputs in [0, 1] (default: the weights' own preset, else none);
    ``gray_to_rgb`` feeds a 3-channel network 1-channel data; ``class_map`` is a JSON file mapping model outputs
    to dataset labels, needed when their numbers differ. ``state-dict:FILE`` takes ``arch``: a robench
    architecture with its options (``width``, ``keep``, ``placement``, ...), or ``torchvision:NAME`` /
    ``timm:NAME``. ``threat_model`` (default Linf) and ``rb_dataset`` (default: ``dataset``) choose a RobustBench
    entry. ``evaluate`` records the clean accuracy on the test split. Returns the saved record; nothing is
    written when a check fails.
    """
    name = store.check_name(name)
    directory = store.model_dir(name, workspace)
    _exists_check(name, directory, workspace, overwrite)
    parsed = parse_spec(spec)
    library = parsed.form == "state-dict" and ":" in str(arch or "")  # weights for a torchvision / timm network
    if library:
        _refuse(arch_options, "only apply to robench architectures (--arch without a ':')")
    elif parsed.form == "state-dict":
        _refuse({"mean": mean, "std": std, "gray_to_rgb": gray_to_rgb, "class_map": class_map},
                "do not apply to state-dict:FILE (a robench architecture normalises inside; its weights must fit "
                "the dataset)")
        if not arch:
            raise UsageError("state-dict:FILE needs --arch ARCH, the robench architecture the weights are for "
                               "(see `robench train --help`), with its options (--width, --keep ...)")
    else:
        _refuse({"arch": arch, **arch_options}, f"only apply to state-dict:FILE, not {parsed.form}")
    if (mean is None) != (std is None):
        raise UsageError("--mean and --std go together: give both (one value, or one per channel)")
    if parsed.form != "robustbench":
        _refuse({"threat_model": threat_model, "rb_dataset": rb_dataset}, "only apply to robustbench:NAME")
    arch_options = {k: v for k, v in arch_options.items() if v is not None}
    data = load_dataset(dataset, data_dir)
    dev = pick_device(device)
    with torch.random.fork_rng():  # randomly initialised imports are reproducible; the caller's RNG is untouched
        torch.manual_seed(0)
        if parsed.form == "state-dict" and not library:
            model, config, details, versions, programs = _state_dict_model(parsed, data, arch or "", arch_options)
        else:
            model, config, details, versions, programs = _wrapped_model(
                parsed, data, mean=mean, std=std, gray_to_rgb=gray_to_rgb, class_map=class_map,
                options={"gray_to_rgb": gray_to_rgb, "threat_model": threat_model, "rb_dataset": rb_dataset,
                         "arch": arch})
    accuracy = None
    if evaluate:
        accuracy = evaluate_accuracy(model.to(dev), data.test, dev)
        model.cpu()
    details = replace(details, file=str(parsed.file.resolve()) if parsed.file else None,
                      source_sha256=store.file_sha256(parsed.file) if parsed.file else None)
    record = ModelRecord(name=name, config=config, dataset=data.ref, origin=Origin("import", parsed.text, details),
                         clean_accuracy=accuracy, device=str(dev), versions={**environment(), **versions},
                         created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    record = _save(state, record, directory, programs, name, workspace, overwrite)
    log.info("imported %s from %s (clean accuracy %s)", name, parsed.text, accuracy)
    if record.chance_warning():
        log.warning(record.chance_warning())
    return record


def _state_dict_model(spec: Spec, data: DatasetInfo, arch: str,
                      options: dict) -> tuple[nn.Module, ModelConfig, ImportDetails, dict, dict]:
    assert spec.file is not None
    state = read_state_dict(spec.file)
    model = create_model(arch, num_classes=data.num_classes, in_channels=data.in_channels,
                         input_size=data.input_size, **options)
    fit_state(model, state, arch, data, spec.file)
    _forward(model, data)
    details = ImportDetails(form="state-dict", model_classes=data.num_classes, model_channels=data.in_channels,
                            input_size=data.input_size, normalisation="in the weights (per-pixel mean)")
    return model, model.config, details, {}, {}


def _wrapped_model(spec: Spec, data: DatasetInfo, *, mean, std, gray_to_rgb: bool, class_map, options: dict
                   ) -> tuple[nn.Module, ModelConfig, ImportDetails, dict, dict]:
    loaded = importer(spec.form).load(spec, data, options)
    form = loaded.form or spec.form
    channels = check_channels(_input_channels(loaded.net), data, gray_to_rgb)
    mean, std, norm_from = _normalisation(mean, std, loaded.preset, channels)
    details = ImportDetails(form=form).updated(loaded.details)
    details = replace(details, mean=mean, std=std, normalisation=norm_from, gray_to_rgb=gray_to_rgb,
                      model_channels=channels, input_size=data.input_size, num_classes=data.num_classes)
    hint = " (an exported program needs a dynamic batch dimension)" if spec.form == "exported" else ""
    model = wrap_net(loaded.net, details)
    model_classes = _forward(model, data, hint).shape[1]
    details = replace(details, model_classes=model_classes)
    if class_map is not None:
        mapping = read_class_map(class_map, model_classes, data)
        details = replace(details, class_map={str(k): v for k, v in sorted(mapping.items())})
        model = wrap_net(loaded.net, details)
        for output, label in mapping.items():
            model.class_map.mask[label, output] = True
        _forward(model, data, hint)
    elif model_classes != data.num_classes:
        raise RobenchError(f"the model has {model_classes} outputs and {data.ref.label} has {data.num_classes} "
                           f"classes; pass --class-map FILE, a JSON object mapping model output indices to dataset "
                           f"labels")
    expected = details.weights_input_size
    if expected and list(expected) != [data.input_size, data.input_size]:
        log.warning("the %s weights were trained on %s px images and %s holds %d px images; robench does not resize",
                    spec.text, "x".join(map(str, expected)), data.ref.label, data.input_size)
    programs = dict(loaded.programs)
    if programs:
        main = PROGRAM_TS if spec.form == "torchscript" else PROGRAM_JSON
        details = replace(details, program=main, program_sha256=sha256(programs[main]))
    extra = {**loaded.config, "program_sha256": details.program_sha256} if reads_file(form) else loaded.config
    config = ModelConfig(loaded.label or arch_label(spec), data.num_classes, data.in_channels, data.input_size,
                         extra=dict(extra))  # an opaque program is its own family, by content
    model.config = config
    return model, config, details, loaded.versions, programs


def _save(state: dict[str, torch.Tensor], record: ModelRecord, directory: Path, programs: dict[str, bytes],
          name: str, workspace: Any, overwrite: bool) -> ModelRecord:
    """Write programs, weights and record into a hidden folder, then move it into place (nothing half-written;
    of two imports of one name at once, the second fails unless ``overwrite``)."""
    tmp = store.staging_dir(directory)
    try:
        for filename, content in programs.items():
            (tmp / filename).write_bytes(content)
        saved = store.save_model(state, record, tmp)
        with store.claim(directory, wait=True):
            _exists_check(name, directory, workspace, overwrite)
            store.replace_dir(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return replace(saved, path=directory)
