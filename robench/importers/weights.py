"""Weights files: ``state-dict:FILE --arch ARCH``, a state dict (torch.save or safetensors, never unpickled).

``--arch`` is a robench architecture (the import is then a plain robench model: :mod:`robench.importing` builds it)
or a library network, ``torchvision:NAME`` / ``timm:NAME``, which :class:`StateDict` loads the weights into.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robench import store
from robench.datasets import DatasetInfo
from robench.errors import RobenchError
from robench.importers.registry import Importer, Loaded, Spec, arch_label, importer, parse_spec
from robench.models import create_model
from robench.records import ModelRecord

CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model", "net")  # where training scripts nest a state dict
LIBRARY_ARCHS = ("torchvision", "timm")


class StateDict(Importer):
    wrapped = False  # rebuilt as a robench architecture: the record is a plain robench model

    def load(self, spec: Spec, data: DatasetInfo, options: dict) -> Loaded:
        """``state-dict:FILE --arch torchvision:NAME`` (or ``timm:NAME``): the library network with the file's
        weights."""
        assert spec.file is not None
        base = parse_spec(options["arch"])
        if base.form not in LIBRARY_ARCHS or base.option:
            raise RobenchError(f"--arch {options['arch']}: state-dict:FILE takes a robench architecture, "
                               f"torchvision:NAME or timm:NAME (without weights)")
        loaded = importer(base.form).load(base, data, options)
        fit_state(loaded.net, read_state_dict(spec.file), options["arch"], data, spec.file)
        loaded.form, loaded.label = base.form, arch_label(base)
        loaded.details["weights"] = "state-dict"
        return loaded

    def rebuild(self, record: ModelRecord) -> nn.Module:
        """A robench architecture: the record is a plain robench model."""
        return create_model(record.config.arch, **record.config.build_options())


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


def fit_state(model: nn.Module, state: dict[str, torch.Tensor], arch: str, data: DatasetInfo, path: Path) -> None:
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
