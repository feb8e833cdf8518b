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
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save, save_file

from robench.context import takes_context
from robench.errors import RobenchError
from robench.files import Busy, atomic_path, claim, umask  # noqa: F401  (re-exported)
from robench.records import ModelRecord, SetRecord, write_model_record, write_set_record
from robench.workspace import (  # noqa: F401  (re-exported: the records and folders, readable without torch)
    MODEL_META,
    SET_META,
    check_name,
    list_model_names,
    list_model_records,
    list_set_names,
    list_set_records,
    model_dir,
    read_model,
    read_set,
    resolve_model,
    resolve_set,
    set_dir,
    workspace_dir,
)

MODEL_WEIGHTS, CHECKPOINT = "model.safetensors", "checkpoint.safetensors"


def check_target(directory: Path, overwrite: bool = False, what: str = "model") -> Path:
    """Refuse, before any work, to write a model or set folder that cannot be written: one that is a symbolic
    link (with ``overwrite`` robench would follow it out of the workspace), something other than a folder, or
    one whose workspace is not writable. Nothing is created."""
    from robench.checks import writable

    directory = Path(directory)
    if directory.is_symlink():
        raise RobenchError(f"refusing to {'overwrite' if overwrite else 'write'} {what} '{directory.name}': "
                           f"{directory} is a symbolic link (to {os.readlink(directory)}); robench never follows "
                           f"links out of the workspace; remove the link or choose another --name")
    if os.path.lexists(directory) and not directory.is_dir():
        raise RobenchError(f"refusing to replace {directory}: it is not a folder; remove it or choose another --name")
    writable(directory)
    return directory


def _plain(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in tensors.items()}


def write_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Write tensors to a safetensors file atomically."""
    with atomic_path(path) as tmp:
        save_file(_plain(tensors), str(tmp), metadata=metadata)


def tensor_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    """The safetensors file of ``tensors``, as bytes (what :func:`write_tensors` would write, to hash first)."""
    return save(_plain(tensors))


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


def save_model(state: dict[str, torch.Tensor], record: ModelRecord, directory: Path) -> ModelRecord:
    """Save weights (safetensors), then the record with the weights' sha256; returns the record as saved.

    The record is written last: a model folder without ``model.json`` is not a model.
    """
    weights = Path(directory) / MODEL_WEIGHTS
    write_tensors(weights, state)
    record = replace(record, weights_sha256=file_sha256(weights), path=Path(directory))
    write_model_record(directory, record)
    return record


def read_weights(record: ModelRecord) -> dict[str, torch.Tensor]:
    """A saved model's weights, checked against the sha256 in its record (corruption is reported, not loaded)."""
    weights = Path(record.path or ".") / MODEL_WEIGHTS
    state = read_tensors(weights)
    if record.weights_sha256 and file_sha256(weights) != record.weights_sha256:
        raise RobenchError(f"weights file {weights} does not match its metadata (changed or corrupt); "
                           f"re-create the model")
    return state


# ---------------------------------------------------------------- adversarial sets

SET_FIELDS = ("adv", "clean", "labels", "source_pred", "indices", "l2", "linf")


def staging_dir(directory: Path) -> Path:
    """A new hidden folder beside ``directory`` (usual permissions), to fill and then rename into place."""
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
        os.chmod(tmp, 0o777 & ~umask())  # mkdtemp makes 0700 folders
    except OSError as err:
        raise RobenchError(f"cannot write to {directory.parent} ({err.strerror}); choose a writable --workspace") \
            from None
    return tmp


def replace_dir(tmp: Path, directory: Path) -> None:
    """Move a filled staging folder (:func:`staging_dir`) to ``directory``, replacing what is there.

    The caller holds ``claim(directory)``. The old folder is first renamed aside, then removed, so a reader sees
    the old or the new folder whole and never a half-deleted one.
    """
    old = None
    if directory.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{directory.name}.old.", dir=directory.parent))
        os.replace(directory, old / directory.name)
    os.replace(tmp, directory)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class SetWriter:
    """Streams an adversarial set to disk batch by batch, so memory stays flat in the set's size.

    Shards (``part-00000.safetensors`` ...) go into a hidden temporary folder that is renamed to
    ``directory`` only by :meth:`finish`; on any error the temporary folder is removed, so no
    partial set is ever left behind. Each batch holds the tensors named in ``SET_FIELDS`` (first dimension
    N), plus any method-specific ones (e.g. ``queries``, ``targets``), the same keys in every batch.
    """

    def __init__(self, directory: Path, overwrite: bool = False) -> None:
        self.directory = check_target(Path(directory), overwrite, "set")
        try:  # held until finish or abort: one writer per set name at a time
            self._claim: claim | None = claim(self.directory)
        except Busy:
            raise RobenchError(f"set '{self.directory.name}' already exists in {self.directory.parent} (another "
                               f"process is making it now); pass --name for a new one") from None
        try:
            if self.directory.exists() and not overwrite:
                raise RobenchError(f"set '{self.directory.name}' already exists in {self.directory.parent}; "
                                   f"pass --overwrite to replace it or --name for a new one")
            self.tmp = staging_dir(self.directory)
        except BaseException:
            self._release()
            raise
        self.shards: list[str] = []
        self.keys: tuple[str, ...] | None = None
        self.count = 0

    def _release(self) -> None:
        if self._claim is not None:
            self._claim.release()
            self._claim = None

    def add(self, batch: dict[str, torch.Tensor]) -> None:
        missing = set(SET_FIELDS) - set(batch)
        if missing:
            raise ValueError(f"set batch lacks {sorted(missing)}")
        keys = tuple(sorted(batch))
        if self.keys is not None and keys != self.keys:
            raise ValueError(f"set batch has keys {keys}, earlier batches had {self.keys}")
        self.keys = keys
        n = len(batch["labels"])
        if n == 0:
            return
        shard = f"part-{len(self.shards):05d}.safetensors"
        path = self.tmp / shard
        save_file({k: v.detach().cpu().contiguous().clone() for k, v in batch.items()}, str(path))
        os.chmod(path, 0o666 & ~umask())
        self.shards.append(shard)
        self.count += n

    def finish(self, record: SetRecord) -> SetRecord:
        """Write set.json (with shard list, count and a content hash) and move the set into place."""
        digest = hashlib.sha256("".join(file_sha256(self.tmp / s) for s in self.shards).encode()).hexdigest()
        record = replace(record, shards=list(self.shards), n=self.count, sha256=digest)
        write_set_record(self.tmp, record)
        try:
            replace_dir(self.tmp, self.directory)
        finally:
            self._release()
        record.path = self.directory
        return record

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
        self._release()

    def __enter__(self) -> SetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or self.tmp.exists():
            self.abort()


@dataclass
class AdvSet:
    """A loaded adversarial set. Images (N, C, H, W) float32 in [0,1]; the rest (N,) (``extra``: per-example
    method-specific tensors such as ``queries`` or ``targets``)."""

    adv: torch.Tensor
    clean: torch.Tensor
    labels: torch.Tensor
    source_pred: torch.Tensor
    indices: torch.Tensor
    l2: torch.Tensor
    linf: torch.Tensor
    record: SetRecord
    extra: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)


def _being_replaced(name_or_path: str | os.PathLike, workspace: str | os.PathLike | None) -> bool:
    """True while :func:`replace_dir` has renamed the set's old folder aside and not yet moved the new one in."""
    folders = [Path(name_or_path)]
    with contextlib.suppress(RobenchError):
        folders.append(set_dir(str(name_or_path), workspace))
    return any(any(f.parent.glob(f".{f.name}.old.*")) for f in folders)


def _read_settled(name_or_path: str | os.PathLike, workspace: str | os.PathLike | None) -> SetRecord:
    """:func:`read_set`, waiting out (for up to a second) a replacement of the set by another process."""
    for _ in range(200):
        try:
            return read_set(name_or_path, workspace)
        except RobenchError:
            if not _being_replaced(name_or_path, workspace):
                raise
            time.sleep(0.005)
    return read_set(name_or_path, workspace)


@takes_context
def load_set(name_or_path: str | os.PathLike, workspace: str | os.PathLike | None = None) -> AdvSet:
    """Load a set's tensors (shards concatenated) and record.

    A set that another process replaces while it is read (``--overwrite``) is read again, so the tensors are always
    those of one version, whole.
    """
    for attempt in range(5):
        record = _read_settled(name_or_path, workspace)
        try:
            parts = [read_tensors(Path(record.path or ".") / s) for s in record.shards]
        except RobenchError:
            if attempt == 4 or _read_settled(name_or_path, workspace).sha256 == record.sha256:
                raise  # not replaced meanwhile: the set is damaged
            continue
        if _read_settled(name_or_path, workspace).sha256 == record.sha256:
            break
    else:
        raise RobenchError(f"set {name_or_path} kept changing while it was read; try again")
    directory = Path(record.path or ".")
    keys = list(parts[0]) if parts else list(SET_FIELDS)
    tensors = {k: torch.cat([p[k] for p in parts]) if parts else torch.empty(0) for k in keys}
    if len(tensors["labels"]) != record.n:
        raise RobenchError(f"set {directory} holds {len(tensors['labels'])} examples, its metadata says "
                           f"{record.n}; re-create it")
    extra = {k: v for k, v in tensors.items() if k not in SET_FIELDS}
    return AdvSet(**{k: tensors[k] for k in SET_FIELDS}, record=record, extra=extra)


