"""The workspace: models and adversarial sets as safetensors + JSON, written atomically.

Layout::

    WORKSPACE/models/NAME/model.safetensors   weights, masks and normalisation
    WORKSPACE/models/NAME/model.json          everything needed to rebuild it, plus results
    WORKSPACE/models/NAME/checkpoint.safetensors   training state (while training)
    WORKSPACE/sets/NAME/...                   adversarial sets
    WORKSPACE/cache/...                       cached predictions

Nothing is ever unpickled: tensors go through safetensors and metadata through JSON.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from robench.errors import RobenchError

MODEL_WEIGHTS, MODEL_META, CHECKPOINT = "model.safetensors", "model.json", "checkpoint.safetensors"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


def workspace_dir(path: str | os.PathLike | None = None) -> Path:
    """The workspace: the argument, else $ROBENCH_WORKSPACE, else ./robench-workspace."""
    return Path(path or os.environ.get("ROBENCH_WORKSPACE") or "robench-workspace")


def check_name(name: str) -> str:
    """Names become folder names: letters, digits, '.', '_', '+', '-' only."""
    if not _NAME.match(name):
        raise RobenchError(f"invalid name '{name}': use letters, digits, '.', '_', '+' and '-' only")
    return name


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``, else delete it."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise RobenchError(f"cannot write to {path.parent} ({err.strerror}); choose a writable --workspace") from None
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise RobenchError(f"missing file {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RobenchError(f"corrupt metadata file {path} ({err}); delete it and re-create it") from None


def write_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Write tensors to a safetensors file atomically."""
    with atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file; a missing, truncated or corrupt file gives a RobenchError."""
    path = Path(path)
    if not path.exists():
        raise RobenchError(f"missing file {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise RobenchError(f"corrupt or truncated tensor file {path} ({err}); delete it and re-create it") from None


def read_tensor_metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise RobenchError(f"corrupt or truncated tensor file {path} ({err}); delete it and re-create it") from None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------- models


def model_dir(name: str, workspace: str | os.PathLike | None = None) -> Path:
    return workspace_dir(workspace) / "models" / check_name(name)


def save_model(model: nn.Module, meta: dict, directory: Path) -> dict:
    """Save weights (safetensors) then metadata (JSON, with the weights' sha256). Returns the metadata."""
    weights = directory / MODEL_WEIGHTS
    write_tensors(weights, model.state_dict())
    meta = {**meta, "weights_sha256": file_sha256(weights)}
    write_json(directory / MODEL_META, meta)
    return meta


def resolve_model(name_or_path: str | os.PathLike, workspace: str | os.PathLike | None = None) -> Path:
    """A model directory from a workspace name, a model directory or its model.json path."""
    path = Path(name_or_path)
    if path.name == MODEL_META and path.is_file():
        return path.parent
    if (path / MODEL_META).is_file():
        return path
    name = str(name_or_path)
    directory = model_dir(name, workspace)
    if not (directory / MODEL_META).is_file():
        known = list_model_names(workspace)
        from robench.errors import unknown_name

        if known:
            raise unknown_name(f"model in {workspace_dir(workspace)}", name, known)
        raise RobenchError(
            f"no model '{name}' in workspace {workspace_dir(workspace)} (it holds none); "
            f"train one with `robench train` or pass --workspace"
        )
    return directory


def load_model_meta(name_or_path: str | os.PathLike, workspace: str | os.PathLike | None = None) -> dict:
    directory = resolve_model(name_or_path, workspace)
    meta = read_json(directory / MODEL_META)
    meta["path"] = str(directory)
    return meta


def load_model(
    name_or_path: str | os.PathLike, workspace: str | os.PathLike | None = None, device: str | torch.device = "cpu"
) -> nn.Module:
    """Rebuild a saved model and load its weights; returned in eval mode for [0,1] NCHW input.

    The weights file's sha256 is checked against the metadata, so corruption or truncation is
    reported rather than silently loaded.
    """
    from robench.models import create_model

    meta = load_model_meta(name_or_path, workspace)
    weights = Path(meta["path"]) / MODEL_WEIGHTS
    state = read_tensors(weights)
    if meta.get("weights_sha256") and file_sha256(weights) != meta["weights_sha256"]:
        raise RobenchError(f"weights file {weights} does not match its metadata (changed or corrupt); retrain it")
    config = dict(meta["config"])
    model = create_model(config.pop("name"), **config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise RobenchError(f"weights in {weights} do not fit the model in its metadata ({str(err)[:120]})") from None
    model.robench_meta = meta
    return model.to(device).eval()


def list_model_names(workspace: str | os.PathLike | None = None) -> list[str]:
    root = workspace_dir(workspace) / "models"
    return sorted(p.parent.name for p in root.glob(f"*/{MODEL_META}")) if root.is_dir() else []


def list_saved(kind: str, meta_file: str, workspace: str | os.PathLike | None = None,
               reader: Callable[[Path], dict] = read_json) -> list[dict]:
    """Metadata of every artifact of ``kind`` ('models' or 'sets') in the workspace."""
    root = workspace_dir(workspace) / kind
    out = []
    for meta_path in sorted(root.glob(f"*/{meta_file}")) if root.is_dir() else []:
        meta = reader(meta_path)
        meta["path"] = str(meta_path.parent)
        out.append(meta)
    return out


# ---------------------------------------------------------------- adversarial sets

SET_META = "set.json"
SET_FIELDS = ("adv", "clean", "labels", "source_pred", "indices", "l2", "linf")


def set_dir(name: str, workspace: str | os.PathLike | None = None) -> Path:
    return workspace_dir(workspace) / "sets" / check_name(name)


class SetWriter:
    """Streams an adversarial set to disk batch by batch, so memory stays flat in the set's size.

    Shards (``part-00000.safetensors`` ...) go into a hidden temporary folder that is renamed to
    ``directory`` only by :meth:`finish`; on any error the temporary folder is removed, so no
    partial set is ever left behind. Each batch holds the tensors named in ``SET_FIELDS``.
    """

    def __init__(self, directory: Path, overwrite: bool = False) -> None:
        self.directory = Path(directory)
        if self.directory.exists() and not overwrite:
            raise RobenchError(f"set '{self.directory.name}' already exists in {self.directory.parent}; "
                               f"pass --overwrite to replace it or --name for a new one")
        try:
            self.directory.parent.mkdir(parents=True, exist_ok=True)
            self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.directory.name}.", dir=self.directory.parent))
        except OSError as err:
            raise RobenchError(f"cannot write to {self.directory.parent} ({err.strerror}); "
                               f"choose a writable --workspace") from None
        self.shards: list[str] = []
        self.count = 0

    def add(self, batch: dict[str, torch.Tensor]) -> None:
        missing = set(SET_FIELDS) - set(batch)
        if missing:
            raise ValueError(f"set batch lacks {sorted(missing)}")
        n = len(batch["labels"])
        if n == 0:
            return
        shard = f"part-{len(self.shards):05d}.safetensors"
        save_file({k: batch[k].detach().cpu().clone() for k in SET_FIELDS}, str(self.tmp / shard))
        self.shards.append(shard)
        self.count += n

    def finish(self, meta: dict) -> dict:
        """Write set.json (with shard list and a content hash) and move the set into place."""
        digest = hashlib.sha256("".join(file_sha256(self.tmp / s) for s in self.shards).encode()).hexdigest()
        meta = {**meta, "shards": self.shards, "n": self.count, "sha256": digest}
        write_json(self.tmp / SET_META, meta)
        if self.directory.exists():
            shutil.rmtree(self.directory)
        os.replace(self.tmp, self.directory)
        return meta

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> SetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or self.tmp.exists():
            self.abort()


@dataclass
class AdvSet:
    """A loaded adversarial set. Images (N, C, H, W) float32 in [0,1]; the rest (N,)."""

    adv: torch.Tensor
    clean: torch.Tensor
    labels: torch.Tensor
    source_pred: torch.Tensor
    indices: torch.Tensor
    l2: torch.Tensor
    linf: torch.Tensor
    meta: dict

    def __len__(self) -> int:
        return len(self.labels)


def resolve_set(name_or_path: str | os.PathLike, workspace: str | os.PathLike | None = None) -> Path:
    path = Path(name_or_path)
    if (path / SET_META).is_file():
        return path
    if path.name == SET_META and path.is_file():
        return path.parent
    directory = set_dir(str(name_or_path), workspace)
    if not (directory / SET_META).is_file():
        from robench.errors import unknown_name

        known = list_set_names(workspace)
        if known:
            raise unknown_name(f"set in {workspace_dir(workspace)}", str(name_or_path), known)
        raise RobenchError(f"no set '{name_or_path}' in workspace {workspace_dir(workspace)} (it holds none); "
                           f"make one with `robench attack` or pass --workspace")
    return directory


def load_set(name_or_path: str | os.PathLike, workspace: str | os.PathLike | None = None) -> AdvSet:
    """Load a set's tensors and metadata (shards concatenated)."""
    directory = resolve_set(name_or_path, workspace)
    meta = read_json(directory / SET_META)
    meta["path"] = str(directory)
    parts = [read_tensors(directory / s) for s in meta.get("shards", [])]
    tensors = {}
    for k in SET_FIELDS:
        tensors[k] = torch.cat([p[k] for p in parts]) if parts else torch.empty(0)
    if len(tensors["labels"]) != meta.get("n", 0):
        raise RobenchError(f"set {directory} holds {len(tensors['labels'])} examples, its metadata says "
                           f"{meta.get('n')}; re-create it")
    return AdvSet(**tensors, meta=meta)


def list_set_names(workspace: str | os.PathLike | None = None) -> list[str]:
    root = workspace_dir(workspace) / "sets"
    return sorted(p.parent.name for p in root.glob(f"*/{SET_META}")) if root.is_dir() else []
