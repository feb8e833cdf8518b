"""The workspace's typed metadata: what a model, an adversarial set and a dataset reference record.

These records are the only way metadata is read or written: ``model.json`` and ``set.json`` go through
:func:`read_model_record` / :func:`write_model_record` and :func:`read_set_record` / :func:`write_set_record`,
and nothing else in robench opens them. Every record carries a schema version. Files written before typed
records existed (robench 0.1, no ``schema`` key) are migrated when read; files from a newer robench are a
one-line error asking for an upgrade.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from robench.errors import RobenchError
from robench.files import read_json, write_json

SCHEMA = 1
MODEL_JSON, SET_JSON = "model.json", "set.json"


def _known(cls: type, data: dict) -> dict:
    """The entries of ``data`` that are fields of dataclass ``cls``."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def _check_schema(data: dict, path: Path | str) -> int:
    version = data.get("schema", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise RobenchError(f"corrupt record {path} (field 'schema' holds {version!r}, not a version number); "
                           f"re-create it")
    if version > SCHEMA:
        raise RobenchError(f"{path} was written by a newer robench (schema {version}, this one reads up to "
                           f"{SCHEMA}); upgrade robench with `pip install -U robench`")
    return version


def _to_json(record: Any, kind: str, **nested: Any) -> dict[str, Any]:
    """A saved record's fields (all but ``path``) with its kind, the current schema and its nested records."""
    data = {f.name: getattr(record, f.name) for f in fields(record) if f.name != "path"}
    return {**data, "kind": kind, "schema": SCHEMA, **nested}


def _from_json(cls: type, data: dict[str, Any], path: Path | str, nested: Callable[[dict, int], dict]) -> Any:
    """A saved record from JSON: schema checked, ``nested(data, version)`` decodes (and migrates) its parts, and
    every field (nested records included) has its declared type; anything else is the one "corrupt record"
    error, whatever the JSON held."""
    version = _check_schema(data, path)
    try:
        record = cls(**{**_known(cls, data), **nested(data, version), "schema": SCHEMA, "path": None})
        _check_types(record)
        return record
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise RobenchError(f"corrupt {cls.__name__.removesuffix('Record').lower()} record {path} "
                           f"({type(err).__name__}: {err}); re-create it") from None


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    import typing

    return typing.get_type_hints(cls)


def _conforms(value: Any, hint: Any) -> bool:
    """True when a JSON-decoded ``value`` is a ``hint`` (str, int, float, X | None, list[X], tuple[X, ...],
    dict[K, V], a record class, Any)."""
    import types
    import typing

    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (list, tuple):
        return isinstance(value, origin) and all(_conforms(v, args[0]) for v in value) if args else \
            isinstance(value, origin)
    if origin is dict:
        return isinstance(value, dict) and all(_conforms(k, args[0]) and _conforms(v, args[1])
                                               for k, v in value.items())
    return isinstance(value, origin or hint)


def _check_types(record: Any) -> None:
    """Raise TypeError naming the first field of ``record`` (or of a record inside it) not of its declared type."""
    for f in fields(record):
        value, hint = getattr(record, f.name), _hints(type(record))[f.name]
        if not _conforms(value, hint):
            raise TypeError(f"field '{f.name}' holds {type(value).__name__} {value!r:.40}, not {hint}")
        for inner in value if isinstance(value, list) else [value]:
            if is_dataclass(inner) and not isinstance(inner, type):
                _check_types(inner)


def _list(value: Any, name: str) -> list:
    if not isinstance(value, (list, type(None))):
        raise TypeError(f"field '{name}' holds {type(value).__name__}, not a list")
    return value or []


# ---------------------------------------------------------------- datasets


@dataclass(frozen=True)
class DatasetRef:
    """Which data a model was trained on or a set was made from, and how to find it again.

    ``name`` is a registered dataset (``cifar10``, ``digits``, ``folder`` ...). ``root`` is where a
    user-supplied dataset (a folder tree) lived when it was recorded; built-in datasets need none.
    ``fingerprint`` is the sha256 of the test split (its file list and labels for folders, its arrays for
    datasets held as arrays): a dataset found elsewhere must match it. ``options`` are the loader's settings
    that change the tensors (e.g. a streamed folder's image size). ``classes`` are the class names, when known.
    """

    name: str
    num_classes: int
    in_channels: int
    input_size: int
    n_train: int = 0
    n_test: int = 0
    root: str | None = None
    fingerprint: str | None = None
    classes: tuple[str, ...] | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """Short display name: ``digits``; ``folder:<tree name>`` for a folder, ``folder:<tree>@224px`` streamed."""
        label = f"{self.name}:{Path(self.root).name}" if self.root else self.name
        return label + (f"@{self.options.get('image_size')}px" if self.options.get("stream") else "")

    @property
    def shape(self) -> tuple[int, int, int]:
        """The shape (C, H, W) of one image."""
        return self.in_channels, self.input_size, self.input_size

    def same_data(self, other: DatasetRef) -> bool:
        """True when both references name the same data (by fingerprint where both have one)."""
        if self.name != other.name or self.options != other.options:
            return False
        if self.fingerprint and other.fingerprint:
            return self.fingerprint == other.fingerprint
        if self.root and other.root:  # a record from before fingerprints: the same folder is the same data
            return Path(self.root) == Path(other.root)
        return True

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["classes"] = list(self.classes) if self.classes is not None else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DatasetRef:
        if not isinstance(data, dict):
            raise TypeError(f"field 'dataset' holds {type(data).__name__}, not an object")
        data = _known(cls, data)
        if data.get("classes") is not None:
            data["classes"] = tuple(str(c) for c in data["classes"])
        data["options"] = dict(data.get("options") or {})
        return cls(**data)

    @classmethod
    def from_v0(cls, data: dict[str, Any]) -> DatasetRef:
        """The reference of a robench 0.1 record: ``{"dataset": "digits" | "folder:/abs/path", ...}``."""
        if not isinstance(data, dict):
            raise TypeError(f"field 'dataset' holds {type(data).__name__}, not an object")
        name, root = str(data.get("dataset", "?")), None
        if name.startswith("folder:"):
            name, root = "folder", name.split(":", 1)[1]
        return cls(name=name, num_classes=int(data.get("num_classes", 0)), in_channels=int(data.get("in_channels", 0)),
                   input_size=int(data.get("input_size", 0)), n_train=int(data.get("n_train", 0)),
                   n_test=int(data.get("n_test", 0)), root=root)


# ---------------------------------------------------------------- models


@dataclass(frozen=True)
class Origin:
    """Where a model came from: ``train`` (robench trained it) or ``import`` (``spec`` says from what)."""

    kind: str = "train"
    spec: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Origin:
        if not isinstance(data, (dict, type(None))):
            raise TypeError(f"field 'origin' holds {type(data).__name__}, not an object")
        data = _known(cls, data or {})
        data["details"] = dict(data.get("details") or {})
        return cls(**data)


@dataclass
class ModelRecord:
    """A saved model: how to rebuild it, what data it knows, how it was made and how well it does.

    ``config`` holds the construction arguments (``config["name"]`` is the architecture). ``path`` is where
    the record was read from; it is never written.
    """

    name: str
    config: dict[str, Any]
    dataset: DatasetRef
    weights_sha256: str = ""
    origin: Origin = field(default_factory=Origin)
    seed: int | None = None
    preset: str | None = None
    recipe: dict[str, Any] | None = None
    clean_accuracy: float | None = None
    train_accuracy: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    wall_time_s: float | None = None
    device: str | None = None
    precision: str = "fp32"
    versions: dict[str, str] = field(default_factory=dict)
    created: str = ""
    schema: int = SCHEMA
    path: Path | None = field(default=None, compare=False)

    @property
    def arch(self) -> str:
        return str(self.config.get("name", "?"))

    @property
    def epochs(self) -> int:
        return len(self.history)

    @property
    def near_chance(self) -> bool:
        """True when the clean accuracy is no better than guessing (see :func:`near_chance`)."""
        return near_chance(self.clean_accuracy, self.dataset.num_classes, self.dataset.n_test)

    def chance_warning(self) -> str | None:
        """A warning that the model has not learned (its clean accuracy is near 1/classes), else None."""
        if not self.near_chance:
            return None
        classes = self.dataset.num_classes
        return (f"model {self.name}: clean accuracy {self.clean_accuracy:.1%} on {self.dataset.n_test} test images is "
                f"near chance (1/{classes} = {1 / classes:.1%}): it has not learned its data, and every attack "
                f"will look defended against. Train longer or with another recipe (e.g. --preset quick for a short "
                f"CPU run, --augment none), or check the data, --mean/--std and --class-map of an import")

    def to_json(self) -> dict[str, Any]:
        return _to_json(self, "model", dataset=self.dataset.to_json(), origin=self.origin.to_json())

    @classmethod
    def from_json(cls, data: dict[str, Any], path: Path | str = "<record>") -> ModelRecord:
        def nested(data: dict, version: int) -> dict:
            if version == 0:  # robench 0.1: an untyped dataset dict; every model was trained by robench
                return {"dataset": DatasetRef.from_v0(data.get("dataset") or {}), "origin": Origin()}
            return {"dataset": DatasetRef.from_json(data["dataset"]), "origin": Origin.from_json(data.get("origin"))}

        return _from_json(cls, data, path, nested)


CHANCE_LEVEL = 0.001  # a model is at chance when guessing would reach its accuracy this often or more
CHANCE_RATIO = 1.25  # ... or when its accuracy is below 1.25 / classes


def near_chance(accuracy: float | None, classes: int, n: int) -> bool:
    """True when ``accuracy`` on ``n`` test images of ``classes`` classes is near chance (1/classes): below
    ``CHANCE_RATIO``/classes, or not significantly above chance (a guesser's number of correct answers,
    Binomial(n, 1/classes), reaches it with probability at least ``CHANCE_LEVEL``). Unknown accuracy: False."""
    import math

    if accuracy is None or math.isnan(accuracy) or classes < 2:
        return False
    chance = 1 / classes
    if accuracy < CHANCE_RATIO * chance:
        return True
    if n <= 0:
        return False
    from scipy.stats import binom

    return bool(binom.sf(round(accuracy * n) - 1, n, chance) >= CHANCE_LEVEL)  # P(correct >= observed | guessing)


def read_model_record(directory: str | os.PathLike) -> ModelRecord:
    """The record in ``directory/model.json`` (migrated if it predates typed records)."""
    path = Path(directory) / MODEL_JSON
    record = ModelRecord.from_json(read_json(path), path)
    record.path = Path(directory)
    return record


def write_model_record(directory: str | os.PathLike, record: ModelRecord) -> None:
    write_json(Path(directory) / MODEL_JSON, record.to_json())


# ---------------------------------------------------------------- adversarial sets


@dataclass(frozen=True)
class SourceRef:
    """A model an adversarial set was made against: its name, weights hash and construction config."""

    name: str
    weights_sha256: str
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def arch(self) -> str:
        return str(self.config.get("name", "?"))

    @classmethod
    def of(cls, record: ModelRecord) -> SourceRef:
        return cls(record.name, record.weights_sha256, dict(record.config))

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "arch": self.arch}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SourceRef:
        if not isinstance(data, dict):
            raise TypeError(f"field 'sources' holds a {type(data).__name__}, not an object")
        return cls(**_known(cls, data))


@dataclass
class SetRecord:
    """A saved adversarial set: its sources, data, attack and outcome.

    ``stats`` holds method-specific results (e.g. a convergence trace, query counts); ``shards`` the
    tensor files in order; ``sha256`` hashes their contents. ``target`` is the target mode of a targeted set
    ('random', 'least-likely' or a class label such as '3'; the per-example targets are in the shards), None
    for an untargeted one.
    """

    name: str
    sources: list[SourceRef]
    dataset: DatasetRef
    method: str
    backend: str
    params: dict[str, Any]
    n: int = 0
    attempted: int = 0
    success_rate: float | None = None
    shards: list[str] = field(default_factory=list)
    sha256: str = ""
    backend_version: str = ""
    seed: int = 0
    n_requested: int | None = None
    batch_size: int | None = None
    device: str | None = None
    precision: str = "fp32"
    wall_time_s: float | None = None
    created: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    schema: int = SCHEMA
    path: Path | None = field(default=None, compare=False)

    @property
    def source_names(self) -> list[str]:
        return [s.name for s in self.sources]

    @property
    def source_label(self) -> str:
        return "+".join(self.source_names) or "?"

    def to_json(self) -> dict[str, Any]:
        return _to_json(self, "set", dataset=self.dataset.to_json(), sources=[s.to_json() for s in self.sources])

    @classmethod
    def from_json(cls, data: dict[str, Any], path: Path | str = "<record>") -> SetRecord:
        def nested(data: dict, version: int) -> dict:
            dataset = data.get("dataset") or {}
            return {"dataset": DatasetRef.from_v0(dataset) if version == 0 else DatasetRef.from_json(dataset),
                    "sources": [SourceRef.from_json(s) for s in _list(data.get("sources"), "sources")]}

        return _from_json(cls, data, path, nested)


def read_set_record(directory: str | os.PathLike) -> SetRecord:
    """The record in ``directory/set.json`` (migrated if it predates typed records)."""
    path = Path(directory) / SET_JSON
    record = SetRecord.from_json(read_json(path), path)
    record.path = Path(directory)
    return record


def write_set_record(directory: str | os.PathLike, record: SetRecord) -> None:
    write_json(Path(directory) / SET_JSON, record.to_json())
