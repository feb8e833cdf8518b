"""Imported models rebuilt from their records: the wrapper every import is stored as, and one builder per form.

An imported model is stored as one :class:`ImportedNet` taking NCHW float32 in [0, 1]: optional gray-to-RGB, the
normalisation, the imported network, then an optional class map (model outputs -> dataset labels). Its weights
(wrapper buffers included) are the model's ``model.safetensors``; the record's ``origin.details`` say how to rebuild
the untrained network they fit. Importing (parsing a SPEC, checking it against a dataset) is
:mod:`robench.importing`; this module only rebuilds, so every consumer can load an imported model.

What rebuilding runs, per form (``origin.details["form"]``):

- ``state-dict``: nothing but robench's own architecture (the record is a plain robench model);
- ``torchvision`` / ``timm`` / ``robustbench``: the library's constructor, without downloading weights;
- ``torchscript``: ``torch.jit.load`` on the archive stored beside the weights (sha256 checked first). It reads the
  archive's tensors with TorchScript's own restricted unpickler (no Python callables) and compiles the archive's
  TorchScript code for TorchScript's interpreter: no Python runs, but PyTorch's security policy asks to treat
  TorchScript as code from its provider;
- ``exported``: torch's ``ExportedProgram`` deserializer on the program stored as JSON (sha256 checked first), with
  the tensors from safetensors: no pickle is read (``torch.export.load`` is not used, since it may unpickle);
- ``python``: the user's ``module:function``, called again (it is their code: the one form that runs Python).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import sys
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robench import store
from robench.errors import RobenchError
from robench.models.network import create_model
from robench.models.saved import register_builder
from robench.records import ModelRecord

log = logging.getLogger(__name__)

PROGRAM_TS, PROGRAM_JSON, PROGRAM_CONSTANTS = "program.torchscript", "program.json", "program-constants.safetensors"


# ---------------------------------------------------------------- the wrapper


class Normalize(nn.Module):
    """(x - mean) / std per channel; ``mean`` and ``std`` hold 1 or C values (buffers, saved with the weights)."""

    def __init__(self, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(-1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


class GrayToRGB(nn.Module):
    """(N, 1, H, W) -> (N, 3, H, W), the gray channel repeated (differentiable, so attacks see one channel)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.expand(-1, 3, -1, -1)


class ClassMap(nn.Module):
    """Model logits (N, K_model) -> dataset logits (N, K_data): each dataset label takes the log-sum-exp of the
    model outputs mapped to it (one output: its logit unchanged). ``mask`` (K_data, K_model) bool is a buffer."""

    def __init__(self, num_classes: int, model_classes: int) -> None:
        super().__init__()
        self.register_buffer("mask", torch.zeros(num_classes, model_classes, dtype=torch.bool))

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.unsqueeze(1).masked_fill(~self.mask, float("-inf")).logsumexp(-1)


class ImportedNet(nn.Module):
    """An imported network as robench stores it: input (N, C, H, W) float32 in [0, 1] -> (N, num_classes) logits.

    ``gray_to_rgb`` repeats a 1-channel input to 3; ``mean``/``std`` normalise; ``class_map`` (when given,
    (K_data, K_model) classes) maps the network's outputs to the dataset's labels. ``fixed_mode`` networks
    (exported programs) keep the train/eval mode they were exported in.
    """

    def __init__(self, net: nn.Module, mean: list[float], std: list[float], gray_to_rgb: bool = False,
                 class_map: tuple[int, int] | None = None, fixed_mode: bool = False, config: dict | None = None):
        super().__init__()
        self.adapt = GrayToRGB() if gray_to_rgb else nn.Identity()
        self.normalize = Normalize(mean, std)
        self.net = net
        self.class_map = ClassMap(*class_map) if class_map else nn.Identity()
        self.fixed_mode = fixed_mode
        self.config = config or {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.class_map(self.net(self.normalize(self.adapt(x))))

    def train(self, mode: bool = True) -> ImportedNet:
        self.training = mode
        for name, child in self.named_children():
            if not (name == "net" and self.fixed_mode):
                child.train(mode)
        return self


# ---------------------------------------------------------------- rebuilding, per form

NetBuilder = Callable[[ModelRecord], nn.Module]
_NETS: dict[str, NetBuilder] = {}


def register_form(form: str) -> Callable[[NetBuilder], NetBuilder]:
    """Register ``builder(record) -> nn.Module``, the untrained network of an import of ``form``."""

    def wrap(fn: NetBuilder) -> NetBuilder:
        if form in _NETS:
            raise ValueError(f"an import form '{form}' is already registered")
        _NETS[form] = fn
        return fn

    return wrap


def forms() -> list[str]:
    return sorted(_NETS)


def wrap_net(net: nn.Module, details: dict[str, Any], config: dict | None = None) -> ImportedNet:
    """The stored wrapper around ``net`` as the import ``details`` describe it."""
    class_map = (details["num_classes"], details["model_classes"]) if details.get("class_map") else None
    return ImportedNet(net, details["mean"], details["std"], gray_to_rgb=details.get("gray_to_rgb", False),
                       class_map=class_map, fixed_mode=details["form"] == "exported", config=config)


@register_builder("import")
def build_imported(record: ModelRecord) -> nn.Module:
    """The untrained module an imported model's record describes (weights are loaded after)."""
    details = record.origin.details
    form = details.get("form")
    if form not in _NETS:
        raise RobenchError(f"model '{record.name}' was imported as '{form}', which this robench cannot rebuild; "
                           f"upgrade robench")
    if form == "state-dict":  # a robench architecture: the record is a plain robench model
        return _NETS[form](record)
    return wrap_net(_NETS[form](record), details, dict(record.config))


@register_form("state-dict")
def _robench_arch(record: ModelRecord) -> nn.Module:
    config = dict(record.config)
    return create_model(config.pop("name"), **config)


def torchvision_net(name: str, num_classes: int, weights: Any = None) -> nn.Module:
    """A torchvision classification network (``weights`` None: random init with ``num_classes`` outputs)."""
    import torchvision.models as tvm

    if weights is None:
        return tvm.get_model(name, weights=None, num_classes=num_classes)
    return tvm.get_model(name, weights=weights)


@register_form("torchvision")
def _torchvision(record: ModelRecord) -> nn.Module:
    details = record.origin.details
    return torchvision_net(details["name"], details["model_classes"])


def need_timm() -> Any:
    try:
        import timm
    except ImportError:
        raise RobenchError("timm models need the timm library: pip install 'robench[timm]'") from None
    return timm


@register_form("timm")
def _timm(record: ModelRecord) -> nn.Module:
    details = record.origin.details
    return need_timm().create_model(details["name"], pretrained=False, num_classes=details["model_classes"],
                                    in_chans=details["model_channels"])


def need_robustbench() -> Any:
    try:
        import robustbench
    except ImportError:
        raise RobenchError("robustbench models need the robustbench library: pip install 'robench[robustbench]'") \
            from None
    return robustbench


@register_form("robustbench")
def _robustbench(record: ModelRecord) -> nn.Module:
    """RobustBench's architecture for the entry, untrained (timm-hosted entries through timm)."""
    details = record.origin.details
    if details.get("timm_name"):
        return need_timm().create_model(details["timm_name"], pretrained=False, num_classes=details["model_classes"])
    need_robustbench()
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    zoo = model_dicts[BenchmarkDataset(details["rb_dataset"])][ThreatModel(details["threat_model"])]
    return zoo[details["name"]]["model"]()


def _program(record: ModelRecord, file: str, key: str = "program_sha256", optional: bool = False) -> Path:
    """A program file stored beside the weights, checked against the sha256 its record holds under ``key``;
    ``optional``: a record without that hash is not checked (constants imported before robench hashed them)."""
    path = Path(record.path or ".") / file
    if not path.is_file():
        raise RobenchError(f"model '{record.name}' lacks its program file {path}; re-import it")
    expected = record.origin.details.get(key)
    if not (optional and expected is None) and store.file_sha256(path) != expected:
        raise RobenchError(f"program file {path} does not match its record (changed or corrupt); re-import the model")
    return path


@register_form("torchscript")
def _torchscript(record: ModelRecord) -> nn.Module:
    return load_torchscript(_program(record, PROGRAM_TS), record.name)


def load_torchscript(path: Path, what: str) -> nn.Module:
    """``torch.jit.load`` (deprecated in torch, hence its FutureWarning is silenced) of a TorchScript archive."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path), map_location="cpu")
    except Exception as err:  # a TorchScript archive this torch cannot read
        raise RobenchError(f"{what}: cannot load the TorchScript archive {path} ({type(err).__name__}); it must be "
                           f"what torch.jit.save writes, readable by this torch ({torch.__version__})") from None


def exported_module(program: bytes, state: dict[str, torch.Tensor], constants: dict[str, torch.Tensor],
                    example: torch.Tensor) -> nn.Module:
    """An exported program's module from its JSON ``program`` and its tensors, with no pickle read.

    ``state`` holds the program's parameters and buffers by name; ``example`` is an input (N, C, H, W).
    """
    from torch._export.serde.serialize import SerializedArtifact, deserialize

    specs = json.loads(program)["graph_module"]["signature"]["input_specs"]
    params = {s["parameter"]["parameter_name"] for s in specs if "parameter" in s}
    state = {k: nn.Parameter(v, requires_grad=v.is_floating_point()) if k in params else v for k, v in state.items()}
    return deserialize(SerializedArtifact(program, state, constants, ((example,), {}))).module()


@register_form("exported")
def _exported(record: ModelRecord) -> nn.Module:
    details = record.origin.details
    program = _program(record, PROGRAM_JSON).read_bytes()
    state = {k.removeprefix("net."): v for k, v in store.read_weights(record).items() if k.startswith("net.")}
    constants = store.read_tensors(_program(record, PROGRAM_CONSTANTS, "constants_sha256", optional=True)) \
        if details.get("constants") else {}
    shape = (details["model_channels"], details["input_size"], details["input_size"])
    try:
        return exported_module(program, state, constants, torch.zeros(2, *shape))
    except Exception as err:  # a program this torch's deserializer cannot read
        raise RobenchError(f"cannot rebuild the exported program of '{record.name}' ({type(err).__name__}: "
                           f"{str(err).splitlines()[0][:100] if str(err) else ''}); re-import it with this torch "
                           f"({torch.__version__})") from None


@contextmanager
def _cwd_on_path():
    """The working directory importable for the call (as `python -m` has it), sys.path restored after."""
    saved = list(sys.path)
    sys.path.insert(0, str(Path.cwd()))
    try:
        yield
    finally:
        sys.path[:] = saved


def call_python(module: str, function: str) -> tuple[nn.Module, str | None]:
    """Run the user's ``module:function()`` (their code) -> (the nn.Module it returns, sha256 of the module's file)."""
    with _cwd_on_path():
        try:
            mod = importlib.import_module(module)
        except ImportError as err:
            raise RobenchError(f"cannot import python module '{module}' ({err}); run from its folder or put it on "
                               f"PYTHONPATH") from None
        except SyntaxError as err:
            raise RobenchError(f"python module '{module}' has a syntax error ({err.msg}, {err.filename} line "
                               f"{err.lineno}); fix the file") from None
        except Exception as err:  # the module's own code failed while importing
            raise RobenchError(f"importing python module '{module}' raised {type(err).__name__}: {err}") from None
    fn = getattr(mod, function, None)
    if not callable(fn):
        raise RobenchError(f"python module '{module}' has no function '{function}'")
    try:
        net = fn()
    except Exception as err:
        raise RobenchError(f"{module}:{function}() raised {type(err).__name__}: {err}") from None
    if not isinstance(net, nn.Module):
        raise RobenchError(f"{module}:{function}() returned {type(net).__name__}, not a torch nn.Module")
    source = getattr(mod, "__file__", None)
    digest = hashlib.sha256(Path(source).read_bytes()).hexdigest() if source and Path(source).is_file() else None
    return net, digest


@register_form("python")
def _python(record: ModelRecord) -> nn.Module:
    details = record.origin.details
    net, digest = call_python(details["module"], details["function"])
    if details.get("module_sha256") and digest != details["module_sha256"]:
        log.warning("the code of %s changed since model %s was imported; its stored weights are loaded into what "
                    "%s:%s() returns now", details["module"], record.name, details["module"], details["function"])
    return net
