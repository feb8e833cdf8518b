"""Bring your own model: put a classifier robench did not train into the workspace (``robench import``).

:func:`import_model` reads a SPEC (one parser, :func:`parse_spec`; :data:`FORMS` lists the forms), builds the
network, checks it against the dataset (input channels, a forward pass on a dataset-shaped batch, finite outputs,
the number of classes or an explicit class map) and saves it as one module taking NCHW float32 in [0, 1]
(:class:`~robench.models.external.ImportedNet`: normalisation inside) with a :class:`~robench.records.ModelRecord`
of origin ``import``. After that it is an ordinary model: attack source, matrix target, every score.

``state-dict:FILE --arch ARCH`` stores a plain robench architecture, so a robench model exported as a state dict
and imported again gets byte-identical weights, the same sha256 and so counts as white-box against its original.
Files are never unpickled beyond ``torch.load(weights_only=True)``; ``python:MODULE:FUNCTION`` is the one form
that runs the user's Python code (at import and at every load).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
import pickle
import shutil
import zipfile
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from robench import store
from robench.data import DatasetInfo, load_dataset
from robench.data import data_dir as default_data_dir
from robench.errors import RobenchError, unknown_name
from robench.files import read_json
from robench.import_spec import FILE_FORMS, FORMS, Spec, _bad_spec, parse_spec  # noqa: F401  (re-exported)
from robench.models import create_model
from robench.models import external as ext
from robench.records import ModelRecord, Origin
from robench.runtime import environment, pick_device
from robench.training import evaluate as evaluate_accuracy

log = logging.getLogger(__name__)

CHECK_BATCH = 8  # images in the import-time forward check
CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model", "net")  # where training scripts nest a state dict


# ---------------------------------------------------------------- loading the network, per form


@dataclass
class Loaded:
    """A network as a SPEC gives it, with what the record needs about it."""

    net: nn.Module
    details: dict[str, Any] = field(default_factory=dict)
    preset: tuple[list[float], list[float]] | None = None  # the weights' own normalisation
    versions: dict[str, str] = field(default_factory=dict)
    programs: dict[str, bytes] = field(default_factory=dict)  # files beside the weights, by file name
    config: dict[str, Any] = field(default_factory=dict)  # identity of the network in the record's config
    form: str | None = None  # the form that rebuilds it, when not the SPEC's own (state-dict into torchvision)
    label: str | None = None  # its architecture as listings show it, when not the SPEC's


def _download_error(what: str, url: str, err: Exception, where: Path, env: str) -> RobenchError:
    filename = Path(urlparse(url).path).name or url
    reason = str(err).strip().splitlines()[0][:80] if str(err).strip() else ""
    return RobenchError(f"cannot get the {what} ({type(err).__name__}: {reason}); they are read from {where} "
                        f"({env} moves it): put {filename} from {url} there, "
                        f"or import on a connected machine")


def _torchvision(spec: Spec, data: DatasetInfo, options: dict) -> Loaded:
    import torchvision
    import torchvision.models as tvm

    names = tvm.list_models(module=tvm)
    if spec.name not in names:
        raise unknown_name("torchvision classification model", spec.name, names)
    loaded = Loaded(net=nn.Identity(), details={"name": spec.name, "weights": None},
                    versions={"torchvision": torchvision.__version__})
    if spec.option is None:
        loaded.net = ext.torchvision_net(spec.name, data.num_classes)
        return loaded
    enum = tvm.get_model_weights(spec.name)
    choices = ["DEFAULT", *enum.__members__]
    if spec.option not in choices:
        raise unknown_name(f"weights for torchvision model {spec.name}", spec.option, choices)
    weights = enum.DEFAULT if spec.option == "DEFAULT" else enum[spec.option]
    try:
        loaded.net = ext.torchvision_net(spec.name, 0, weights)
    except Exception as err:  # offline: URLError, HTTPError, OSError ...
        raise _download_error(f"torchvision weights {weights}", weights.url, err,
                              Path(torch.hub.get_dir()) / "checkpoints", "TORCH_HOME") from None
    preset = weights.transforms()
    loaded.preset = (list(preset.mean), list(preset.std))
    loaded.details.update(weights=str(weights).split(".")[-1], weights_url=weights.url,
                          weights_input_size=list(preset.crop_size))
    return loaded


def _timm(spec: Spec, data: DatasetInfo, options: dict) -> Loaded:
    timm = ext.need_timm()
    if not timm.is_model(spec.name):
        close = difflib.get_close_matches(spec.name, timm.list_models(), n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise RobenchError(f"unknown timm model '{spec.name}': {hint}see timm.list_models()")
    loaded = Loaded(net=nn.Identity(), details={"name": spec.name, "pretrained": spec.option == "pretrained"},
                    versions={"timm": timm.__version__})
    if spec.option == "pretrained":
        try:
            loaded.net = timm.create_model(spec.name, pretrained=True)
        except Exception as err:  # offline: the Hugging Face hub cannot be reached
            from huggingface_hub.constants import HF_HUB_CACHE

            cfg = timm.models.get_pretrained_cfg(spec.name)
            url = getattr(cfg, "hf_hub_id", None) or getattr(cfg, "url", None) or spec.name
            raise _download_error(f"pretrained weights of timm model {spec.name}", str(url), err,
                                  Path(HF_HUB_CACHE), "HF_HOME") from None
        cfg = loaded.net.pretrained_cfg
        loaded.preset = (list(cfg["mean"]), list(cfg["std"]))
        loaded.details["weights_input_size"] = list(cfg.get("input_size", []))[1:]
    else:
        channels = 3 if options["gray_to_rgb"] else data.in_channels
        loaded.net = timm.create_model(spec.name, pretrained=False, num_classes=data.num_classes, in_chans=channels)
    return loaded


RB_DATASETS = ("cifar10", "cifar100", "imagenet")


def _robustbench(spec: Spec, data: DatasetInfo, options: dict) -> Loaded:
    robustbench = ext.need_robustbench()
    from robustbench.utils import load_model as rb_load_model

    rb_dataset = options["rb_dataset"] or (data.name if data.name in RB_DATASETS else None)
    if rb_dataset not in RB_DATASETS:
        raise RobenchError(f"robustbench:{spec.name} on {data.name}: pass --rb-dataset, one of "
                           f"{', '.join(RB_DATASETS)} (the RobustBench leaderboard the model is from)")
    threat = options["threat_model"] or "Linf"
    where = default_data_dir() / "robustbench"
    try:
        net = rb_load_model(model_name=spec.name, model_dir=str(where), dataset=rb_dataset, threat_model=threat)
    except (KeyError, ValueError) as err:
        raise RobenchError(f"RobustBench has no model '{spec.name}' for {rb_dataset} / {threat} ({err}); see its "
                           f"leaderboard, and --rb-dataset / --threat-model") from None
    except Exception as err:  # offline: the checkpoint cannot be downloaded
        raise RobenchError(f"cannot get RobustBench model {spec.name} ({type(err).__name__}); RobustBench keeps its "
                           f"checkpoints in {where / rb_dataset / threat}: put {spec.name}.pt there, or import on a "
                           f"connected machine") from None
    details = {"name": spec.name, "rb_dataset": rb_dataset, "threat_model": threat}
    timm_name = f"{spec.name.lower().replace('-', '_')}_{rb_dataset}_{threat.lower()}"
    try:
        import timm

        if timm.is_model(timm_name):  # RobustBench serves this entry through timm
            details["timm_name"] = timm_name
    except ImportError:
        pass
    return Loaded(net, details, versions={"robustbench": getattr(robustbench, "__version__", "?")},
                  config={"threat_model": threat})


def _torchscript(spec: Spec, data: DatasetInfo, options: dict) -> Loaded:
    assert spec.file is not None
    net = ext.load_torchscript(spec.file, spec.text)
    return Loaded(net, programs={ext.PROGRAM_TS: spec.file.read_bytes()})


def _exported(spec: Spec, data: DatasetInfo, options: dict) -> Loaded:
    from torch._export.serde.serialize import serialize

    assert spec.file is not None
    quiet = logging.getLogger("torch.export")  # it logs a traceback before raising on a file it cannot read
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        program = torch.export.load(str(spec.file))
    except Exception as err:
        raise RobenchError(f"{spec.file} is not an exported program (what torch.export.save writes) "
                           f"({type(err).__name__}); for TorchScript files use torchscript:FILE") from None
    finally:
        quiet.setLevel(level)
    _check_exported_input(program, spec, data, options["gray_to_rgb"])
    constants = dict(program.constants)
    if any(not torch.is_tensor(v) for v in constants.values()):
        raise RobenchError(f"{spec.file} holds script objects among its constants; robench stores exported "
                           f"programs whose constants are tensors only")
    graph = json.loads(serialize(program).exported_program)
    graph["guards_code"] = []  # Python source torch would exec at load; robench checks input shapes itself
    text = json.dumps(graph, sort_keys=True).encode()
    state = {k: v.detach().clone() for k, v in program.state_dict.items()}
    channels = 3 if options["gray_to_rgb"] else data.in_channels
    example = torch.zeros(2, channels, data.input_size, data.input_size)
    try:  # the network robench checks is the one it will rebuild: the stored JSON with the stored tensors
        net = ext.exported_module(text, state, constants, example)
    except Exception as err:
        raise RobenchError(f"{spec.file}: torch cannot rebuild this exported program from its serialized form "
                           f"({type(err).__name__}: {str(err).splitlines()[0][:100] if str(err) else ''})") from None
    loaded = Loaded(net, programs={ext.PROGRAM_JSON: text}, details={"constants": bool(constants)})
    if constants:  # checked like the program when loaded
        loaded.programs[ext.PROGRAM_CONSTANTS] = blob = store.tensor_bytes(constants)
        loaded.details["constants_sha256"] = _sha(blob)
    return loaded


def _check_exported_input(program: Any, spec: Spec, data: DatasetInfo, gray_to_rgb: bool) -> None:
    """An exported program records its input's shape (N, C, H, W), each dimension fixed or dynamic: a fixed batch,
    other channels or another image size than the dataset's is a RobenchError naming the fix."""
    users = set(program.graph_signature.user_inputs)
    shapes = [tuple(n.meta["val"].shape) for n in program.graph.nodes
              if n.op == "placeholder" and n.name in users and torch.is_tensor(n.meta.get("val"))]
    if len(shapes) != 1 or len(shapes[0]) != 4:
        return  # not one image input: the forward-pass check says what goes wrong
    batch, channels, height, width = (d if isinstance(d, int) else None for d in shapes[0])
    if channels is not None:
        _check_channels(channels, data, gray_to_rgb)
    size = data.input_size
    if (height is not None and height != size) or (width is not None and width != size):
        raise RobenchError(f"{spec.file} was exported for {height}x{width} images and {data.ref.label} holds "
                           f"{size}x{size}; export it for this data (or make those dimensions dynamic)")
    if batch is not None:
        raise RobenchError(f"{spec.file} was exported for a fixed batch of {batch}; export it with a dynamic batch "
                           f"dimension: torch.export.export(net, (x,), dynamic_shapes=({{0: torch.export.Dim("
                           f"'batch')}},))")


LIBRARY_ARCHS = ("torchvision", "timm")


def _library_weights(spec: Spec, data: DatasetInfo, options: dict) -> Loaded:
    """``state-dict:FILE --arch torchvision:NAME`` (or ``timm:NAME``): the library network with the file's weights."""
    assert spec.file is not None
    base = parse_spec(options["arch"])
    if base.form not in LIBRARY_ARCHS or base.option:
        raise RobenchError(f"--arch {options['arch']}: state-dict:FILE takes a robench architecture, torchvision:NAME "
                           f"or timm:NAME (without weights)")
    loaded = _LOADERS[base.form](base, data, options)
    _fit_state(loaded.net, read_state_dict(spec.file), options["arch"], data, spec.file)
    loaded.form, loaded.label = base.form, _arch_label(base)
    loaded.details["weights"] = "state-dict"
    return loaded


def _python(spec: Spec, data: DatasetInfo, options: dict) -> Loaded:
    net, digest = ext.call_python(spec.name, spec.option or "")
    return Loaded(net, {"module": spec.name, "function": spec.option, "module_sha256": digest})


_LOADERS = {"torchvision": _torchvision, "timm": _timm, "robustbench": _robustbench, "torchscript": _torchscript,
            "exported": _exported, "python": _python}


# ---------------------------------------------------------------- checks


def _input_channels(net: nn.Module) -> int | None:
    """The input channels of the network's first convolution, when it shows them (scripted ones do too)."""
    for module in net.modules():
        channels = getattr(module, "in_channels", None)
        if isinstance(channels, int) and not isinstance(channels, bool):
            return channels
    return None


def _check_channels(wanted: int | None, data: DatasetInfo, gray_to_rgb: bool) -> int:
    """The channels to feed a network that takes ``wanted`` channels (None: unknown): the dataset's, or 3 with
    --gray-to-rgb; a mismatch with the dataset is a RobenchError."""
    if gray_to_rgb and data.in_channels != 1:
        raise RobenchError(f"--gray-to-rgb repeats the gray channel of 1-channel data; {data.ref.label} has "
                           f"{data.in_channels} channels, drop the option")
    given = 3 if gray_to_rgb else data.in_channels
    if wanted is None or wanted == given:
        return given
    if wanted == 3 and data.in_channels == 1:
        raise RobenchError(f"the model takes 3-channel images and {data.ref.label} has 1 channel; pass --gray-to-rgb "
                           f"to feed it the gray channel repeated three times")
    if gray_to_rgb and wanted == data.in_channels:
        raise RobenchError(f"the model takes {wanted}-channel images, as {data.ref.label} has; drop --gray-to-rgb "
                           f"(it feeds 3 channels)")
    raise RobenchError(f"the model takes {wanted}-channel images and {data.ref.label} has {data.in_channels}; "
                       f"import a model made for this data")


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


# ---------------------------------------------------------------- state dicts (robench architectures)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from a safetensors file or a torch.save file read with ``weights_only=True`` (never unpickled
    beyond tensors and plain containers); a checkpoint that nests the state dict under a usual key is unwrapped."""
    if path.suffix == ".safetensors":
        return store.read_tensors(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise RobenchError(f"{path} holds Python objects besides tensors, which robench never unpickles "
                           f"(torch.load(weights_only=True) refused: {str(err).splitlines()[0][:60]}); save "
                           f"model.state_dict() with torch.save, or as safetensors") from None
    except (RuntimeError, EOFError, OSError, KeyError, ValueError, zipfile.BadZipFile) as err:
        raise RobenchError(f"{path} is neither a torch.save file nor safetensors ({type(err).__name__}); save "
                           f"model.state_dict() with torch.save, or as safetensors") from None
    for key in CHECKPOINT_KEYS:
        if isinstance(obj, dict) and not _is_state(obj) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not _is_state(obj):
        raise RobenchError(f"{path} holds a {type(obj).__name__} that is not a state dict (tensor names -> tensors); "
                           f"save model.state_dict()")
    prefix = "module."  # DataParallel / DistributedDataParallel checkpoints
    if all(k.startswith(prefix) for k in obj):
        obj = {k.removeprefix(prefix): v for k, v in obj.items()}
    return dict(obj)


def _is_state(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(k, str) and torch.is_tensor(v)
                                                       for k, v in obj.items())


def _fit_state(model: nn.Module, state: dict[str, torch.Tensor], arch: str, data: DatasetInfo, path: Path) -> None:
    """Load ``state`` strictly, explaining a mismatch (classes, channels, architecture options) in one line."""
    expected = model.state_dict()
    for key, tensor in expected.items():
        got = state.get(key)
        if got is None or got.shape == tensor.shape:
            continue
        if tensor.ndim >= 1 and tensor.shape[0] == data.num_classes and got.shape[1:] == tensor.shape[1:]:
            raise RobenchError(f"the weights in {path} predict {got.shape[0]} classes and {data.ref.label} has "
                               f"{data.num_classes} ({key} is {tuple(got.shape)})")
        if tensor.ndim == 4 and tensor.shape[1] == data.in_channels and got.shape[1] != tensor.shape[1]:
            raise RobenchError(f"the weights in {path} take {got.shape[1]}-channel images and {data.ref.label} has "
                               f"{data.in_channels} ({key} is {tuple(got.shape)})")
        raise RobenchError(f"the weights in {path} do not fit {arch} with these options: {key} is {tuple(got.shape)} "
                           f"in the file, {tuple(tensor.shape)} in the model; check --arch, --width and the "
                           f"defect options")
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        what = [f"missing {', '.join(missing[:3])}"] if missing else []
        what += [f"unexpected {', '.join(unexpected[:3])}"] if unexpected else []
        raise RobenchError(f"the weights in {path} do not fit {arch}: {'; '.join(what)}; check --arch and its "
                           f"options (--ensemble, --keep ...)")
    model.load_state_dict(state, strict=True)


# ---------------------------------------------------------------- import


def _exists_check(name: str, directory: Path, workspace: Any, overwrite: bool) -> None:
    if (directory / store.MODEL_META).exists() and not overwrite:
        raise RobenchError(f"model '{name}' already exists in {store.workspace_dir(workspace)}; pass --overwrite to "
                           f"replace it or choose another name")


def _refuse(given: dict[str, Any], why: str) -> None:
    used = [k for k, v in given.items() if v is not None and v is not False]
    if used:
        raise RobenchError(f"{', '.join('--' + k.replace('_', '-') for k in used)} {why}")


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
            raise RobenchError("state-dict:FILE needs --arch ARCH, the robench architecture the weights are for "
                               "(see `robench train --help`), with its options (--width, --keep ...)")
    else:
        _refuse({"arch": arch, **arch_options}, f"only apply to state-dict:FILE, not {parsed.form}")
    if (mean is None) != (std is None):
        raise RobenchError("--mean and --std go together: give both (one value, or one per channel)")
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
    details["file"] = str(parsed.file.resolve()) if parsed.file else None
    details["source_sha256"] = store.file_sha256(parsed.file) if parsed.file else None
    record = ModelRecord(name=name, config=config, dataset=data.ref, origin=Origin("import", parsed.text, details),
                         clean_accuracy=accuracy, device=str(dev), versions={**environment(), **versions},
                         created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    record = _save(state, record, directory, programs)
    log.info("imported %s from %s (clean accuracy %s)", name, parsed.text, accuracy)
    if record.chance_warning():
        log.warning(record.chance_warning())
    return record


def _state_dict_model(spec: Spec, data: DatasetInfo, arch: str,
                      options: dict) -> tuple[nn.Module, dict, dict, dict, dict]:
    assert spec.file is not None
    state = read_state_dict(spec.file)
    model = create_model(arch, num_classes=data.num_classes, in_channels=data.in_channels,
                         input_size=data.input_size, **options)
    _fit_state(model, state, arch, data, spec.file)
    _forward(model, data)
    details = {"form": "state-dict", "model_classes": data.num_classes, "model_channels": data.in_channels,
               "input_size": data.input_size, "normalisation": "in the weights (per-pixel mean)"}
    return model, dict(model.config), details, {}, {}


def _wrapped_model(spec: Spec, data: DatasetInfo, *, mean, std, gray_to_rgb: bool, class_map, options: dict
                   ) -> tuple[nn.Module, dict, dict, dict, dict]:
    loaded = (_library_weights if spec.form == "state-dict" else _LOADERS[spec.form])(spec, data, options)
    form = loaded.form or spec.form
    channels = _check_channels(_input_channels(loaded.net), data, gray_to_rgb)
    mean, std, norm_from = _normalisation(mean, std, loaded.preset, channels)
    details: dict[str, Any] = {"form": form, **loaded.details, "mean": mean, "std": std,
                               "normalisation": norm_from, "gray_to_rgb": gray_to_rgb, "model_channels": channels,
                               "input_size": data.input_size, "num_classes": data.num_classes, "class_map": None}
    hint = " (an exported program needs a dynamic batch dimension)" if spec.form == "exported" else ""
    model = ext.wrap_net(loaded.net, details)
    model_classes = _forward(model, data, hint).shape[1]
    details["model_classes"] = model_classes
    if class_map is not None:
        mapping = read_class_map(class_map, model_classes, data)
        details["class_map"] = {str(k): v for k, v in sorted(mapping.items())}
        model = ext.wrap_net(loaded.net, details)
        for output, label in mapping.items():
            model.class_map.mask[label, output] = True
        _forward(model, data, hint)
    elif model_classes != data.num_classes:
        raise RobenchError(f"the model has {model_classes} outputs and {data.ref.label} has {data.num_classes} "
                           f"classes; pass --class-map FILE, a JSON object mapping model output indices to dataset "
                           f"labels")
    expected = details.get("weights_input_size")
    if expected and list(expected) != [data.input_size, data.input_size]:
        log.warning("the %s weights were trained on %s px images and %s holds %d px images; robench does not resize",
                    spec.text, "x".join(map(str, expected)), data.ref.label, data.input_size)
    programs = dict(loaded.programs)
    if programs:
        main = ext.PROGRAM_TS if spec.form == "torchscript" else ext.PROGRAM_JSON
        details["program"] = main
        details["program_sha256"] = _sha(programs[main])
    config = {"name": loaded.label or _arch_label(spec), "num_classes": data.num_classes,
              "in_channels": data.in_channels, "input_size": data.input_size, **loaded.config}
    if form in FILE_FORMS:  # an opaque program: its own family, by content
        config["program_sha256"] = details.get("program_sha256")
    model.config = config
    return model, config, details, loaded.versions, programs


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _arch_label(spec: Spec) -> str:
    """What `robench models` shows as the architecture: ``torchvision:resnet18``, ``torchscript:model.pt`` ..."""
    if spec.form in FILE_FORMS and spec.file is not None:
        return f"{spec.form}:{spec.file.name}"
    if spec.form == "python":
        return f"python:{spec.name}:{spec.option}"
    return f"{spec.form}:{spec.name}"


def _save(state: dict[str, torch.Tensor], record: ModelRecord, directory: Path,
          programs: dict[str, bytes]) -> ModelRecord:
    """Write programs, weights and record into a hidden folder, then move it into place (nothing half-written)."""
    tmp = store.staging_dir(directory)
    try:
        for filename, content in programs.items():
            (tmp / filename).write_bytes(content)
        saved = store.save_model(state, record, tmp)
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return replace(saved, path=directory)
