"""Saved programs: ``torchscript:FILE`` and ``exported:FILE`` (torch.export), stored beside the weights.

What rebuilding runs:

- ``torchscript``: ``torch.jit.load`` on the archive stored beside the weights (sha256 checked first). It reads the
  archive's tensors with TorchScript's own restricted unpickler (no Python callables) and compiles the archive's
  TorchScript code for TorchScript's interpreter: no Python runs, but PyTorch's security policy asks to treat
  TorchScript as code from its provider;
- ``exported``: torch's ``ExportedProgram`` deserializer on the program stored as JSON (sha256 checked first), with
  the tensors from safetensors: no pickle is read (``torch.export.load`` is not used, since it may unpickle).
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robench import store
from robench.datasets import DatasetInfo
from robench.errors import RobenchError
from robench.importers.registry import Importer, Loaded, Spec
from robench.importers.wrapper import check_channels
from robench.records import ModelRecord

PROGRAM_TS, PROGRAM_JSON, PROGRAM_CONSTANTS = "program.torchscript", "program.json", "program-constants.safetensors"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stored_program(record: ModelRecord, file: str, expected: str | None, optional: bool = False) -> Path:
    """A program file stored beside the weights, checked against the sha256 its record holds (``expected``);
    ``optional``: a record without that hash is not checked (constants imported before robench hashed them)."""
    path = Path(record.path or ".") / file
    if not path.is_file():
        raise RobenchError(f"model '{record.name}' lacks its program file {path}; re-import it")
    if not (optional and expected is None) and store.file_sha256(path) != expected:
        raise RobenchError(f"program file {path} does not match its record (changed or corrupt); re-import the model")
    return path


def load_torchscript(path: Path, what: str) -> nn.Module:
    """``torch.jit.load`` (deprecated in torch, hence its FutureWarning is silenced) of a TorchScript archive."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path), map_location="cpu")
    except Exception as err:  # a TorchScript archive this torch cannot read
        raise RobenchError(f"{what}: cannot load the TorchScript archive {path} ({type(err).__name__}); it must be "
                           f"what torch.jit.save writes, readable by this torch ({torch.__version__})") from None


class TorchScript(Importer):
    def load(self, spec: Spec, data: DatasetInfo, options: dict) -> Loaded:
        assert spec.file is not None
        net = load_torchscript(spec.file, spec.text)
        return Loaded(net, programs={PROGRAM_TS: spec.file.read_bytes()})

    def rebuild(self, record: ModelRecord) -> nn.Module:
        return load_torchscript(stored_program(record, PROGRAM_TS, record.origin.details.program_sha256), record.name)


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


def _first_line(err: Exception) -> str:
    return f"{type(err).__name__}: {str(err).splitlines()[0][:100] if str(err) else ''}"


class Exported(Importer):
    def load(self, spec: Spec, data: DatasetInfo, options: dict) -> Loaded:
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
        check_exported_input(program, spec, data, options["gray_to_rgb"])
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
            net = exported_module(text, state, constants, example)
        except Exception as err:
            raise RobenchError(f"{spec.file}: torch cannot rebuild this exported program from its serialized form "
                               f"({_first_line(err)})") from None
        loaded = Loaded(net, programs={PROGRAM_JSON: text}, details={"constants": bool(constants)})
        if constants:  # checked like the program when loaded
            loaded.programs[PROGRAM_CONSTANTS] = blob = store.tensor_bytes(constants)
            loaded.details["constants_sha256"] = sha256(blob)
        return loaded

    def rebuild(self, record: ModelRecord) -> nn.Module:
        details = record.origin.details
        program = stored_program(record, PROGRAM_JSON, details.program_sha256).read_bytes()
        state = {k.removeprefix("net."): v for k, v in store.read_weights(record).items() if k.startswith("net.")}
        constants = store.read_tensors(stored_program(record, PROGRAM_CONSTANTS, details.constants_sha256,
                                                      optional=True)) if details.constants else {}
        shape = (details.model_channels, details.input_size, details.input_size)
        try:
            return exported_module(program, state, constants, torch.zeros(2, *shape))
        except Exception as err:  # a program this torch's deserializer cannot read
            raise RobenchError(f"cannot rebuild the exported program of '{record.name}' ({_first_line(err)}); "
                               f"re-import it with this torch ({torch.__version__})") from None


def check_exported_input(program: Any, spec: Spec, data: DatasetInfo, gray_to_rgb: bool) -> None:
    """An exported program records its input's shape (N, C, H, W), each dimension fixed or dynamic: a fixed batch,
    other channels or another image size than the dataset's is a RobenchError naming the fix."""
    users = set(program.graph_signature.user_inputs)
    shapes = [tuple(n.meta["val"].shape) for n in program.graph.nodes
              if n.op == "placeholder" and n.name in users and torch.is_tensor(n.meta.get("val"))]
    if len(shapes) != 1 or len(shapes[0]) != 4:
        return  # not one image input: the forward-pass check says what goes wrong
    batch, channels, height, width = (d if isinstance(d, int) else None for d in shapes[0])
    if channels is not None:
        check_channels(channels, data, gray_to_rgb)
    size = data.input_size
    if (height is not None and height != size) or (width is not None and width != size):
        raise RobenchError(f"{spec.file} was exported for {height}x{width} images and {data.ref.label} holds "
                           f"{size}x{size}; export it for this data (or make those dimensions dynamic)")
    if batch is not None:
        raise RobenchError(f"{spec.file} was exported for a fixed batch of {batch}; export it with a dynamic batch "
                           f"dimension: torch.export.export(net, (x,), dynamic_shapes=({{0: torch.export.Dim("
                           f"'batch')}},))")
