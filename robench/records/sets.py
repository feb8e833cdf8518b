"""A saved adversarial set's record, :class:`SetRecord`: its sources, data, attack parameters and outcome; read and
written as ``set.json``."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Generic, TypeVar

from robench.files import write_json
from robench.records.codec import SCHEMA, array, known, obj, plain, read_file, read_record, unknown, without_none
from robench.records.config import ModelConfig
from robench.records.dataset import DatasetRef
from robench.records.model import ModelRecord

SET_JSON = "set.json"
T = TypeVar("T")


@dataclass(frozen=True)
class SourceRef:
    """A model an adversarial set was made against: its name, weights hash and construction config."""

    name: str
    weights_sha256: str
    config: ModelConfig | None = None

    @property
    def arch(self) -> str:
        return self.config.arch if self.config else "?"

    @property
    def family(self) -> str | None:
        """The source's family (see :attr:`ModelConfig.family`), None when its config is unknown."""
        return self.config.family if self.config else None

    @classmethod
    def of(cls, record: ModelRecord) -> SourceRef:
        return cls(record.name, record.weights_sha256, record.config)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "config": self.config.to_json() if self.config else None, "arch": self.arch}

    @classmethod
    def from_json(cls, data: Any, version: int = SCHEMA) -> SourceRef:
        data = obj(data, "sources")
        config = data.get("config")
        return cls(**{**known(cls, data), "config": None if config is None else ModelConfig.from_json(config, version)})


class Param(Generic[T]):
    """A parameter of :class:`AttackParams` read as an attribute: its value, or None when the method has none."""

    def __init__(self, doc: str) -> None:
        self.__doc__ = doc

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, params: AttackParams | None, owner: type | None = None) -> T | None:
        return None if params is None else params.get(self.name)


class AttackParams(Mapping):
    """The attack's parameters as the set was made with them (pixel units; see ``robench attack --help``): a
    read-only mapping of every parameter by name, with the ones every reader needs as typed properties."""

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        self._values = dict(values or {})

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"AttackParams({self._values!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self.items()) == dict(other.items())

    __hash__ = None  # type: ignore[assignment]

    eps = Param[float]("The perturbation budget (Linf per pixel, or the L2 norm in [0, 1] image units).")
    norm = Param[str]("The norm the attack works in: linf or l2.")
    steps = Param[int]("The attack's iterations.")
    tolerance = Param[float]("The relative change under which a Boundary run counts as converged.")
    target = Param[str]("A targeted set's target mode ('random', 'least-likely' or a class label).")

    @property
    def linf(self) -> bool:
        """True unless the attack works in the L2 norm (what the parameters' units are shown in)."""
        return self.norm != "l2"

    @property
    def targeted(self) -> bool:
        return bool(self._values.get("targeted", False))

    def to_json(self) -> dict[str, Any]:
        return dict(self._values)


@dataclass(frozen=True)
class Spread:
    """How much of something ``n`` examples (``over`` which: the kept ones) used: median, mean and maximum (None
    when there were none)."""

    over: str
    n: int
    median: float | None = field(default=None, kw_only=True)
    mean: float | None = field(default=None, kw_only=True)
    max: int | None = field(default=None, kw_only=True)

    def to_json(self) -> dict[str, Any]:
        return without_none(asdict(self))


@dataclass(frozen=True)
class QueryStats(Spread):
    """Queries the kept examples of a query-based attack used, of ``budget`` each."""

    budget: int


@dataclass(frozen=True)
class StepsUsed(Spread):
    """Steps the kept examples of a Boundary set ran (of ``cap``; fewer with ``early_stop``), and how many
    converged."""

    cap: int
    early_stop: bool
    converged: int


@dataclass(frozen=True)
class TraceStats:
    """A Boundary set's convergence trace: the score's ``median`` at each of ``steps`` (ascending) over ``n``
    examples, the ``change`` of the last doubling, and whether it ``converged`` under ``tolerance`` (the rule is
    ``robench.attacks.convergence.Trace``'s)."""

    steps: list[int]
    median: list[float]
    n: int = 0
    tolerance: float = 0.05
    settled: int = 5000
    change: float | None = None
    converged: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> TraceStats:
        return plain(cls, data, "trace")


@dataclass(frozen=True)
class SetStats:
    """Method-specific results of a set: ``queries`` (query-based attacks), ``trace`` and ``steps_used``
    (Boundary); ``extra`` holds what another method records."""

    queries: QueryStats | None = None
    trace: TraceStats | None = None
    steps_used: StepsUsed | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        parts = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        return {**{k: v.to_json() for k, v in parts.items() if v is not None}, **self.extra}

    @classmethod
    def from_json(cls, data: Any) -> SetStats:
        data = obj(data, "stats", optional=True)
        types = {"queries": QueryStats, "trace": TraceStats, "steps_used": StepsUsed}
        parts = {k: plain(types[k], v, k) for k, v in known(cls, data).items() if k in types and v is not None}
        return cls(**parts, extra=unknown(cls, data))


@dataclass
class SetRecord:
    """A saved adversarial set: its sources, data, attack and outcome.

    ``params`` are the attack's parameters; ``stats`` its method-specific results (e.g. a convergence trace, query
    counts); ``shards`` the tensor files in order; ``sha256`` hashes their contents. ``target`` is the target mode
    of a targeted set ('random', 'least-likely' or a class label such as '3'; the per-example targets are in the
    shards), None for an untargeted one. Plain mappings given for ``params`` or ``stats`` (what the attack
    registry produces) are turned into their types.
    """

    name: str
    sources: list[SourceRef]
    dataset: DatasetRef
    method: str
    backend: str
    params: AttackParams
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
    stats: SetStats = field(default_factory=SetStats)
    schema: int = SCHEMA
    path: Path | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.params, Mapping) and not isinstance(self.params, AttackParams):
            self.params = AttackParams(self.params)
        if isinstance(self.stats, Mapping):
            self.stats = SetStats.from_json(dict(self.stats))

    @property
    def source_names(self) -> list[str]:
        return [s.name for s in self.sources]

    @property
    def source_label(self) -> str:
        return "+".join(self.source_names) or "?"

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "path"}
        return {**data, "dataset": self.dataset.to_json(), "sources": [s.to_json() for s in self.sources],
                "params": self.params.to_json(), "stats": self.stats.to_json(), "kind": "set", "schema": SCHEMA}

    @classmethod
    def from_json(cls, data: dict[str, Any], path: Path | str = "<record>") -> SetRecord:
        """A record as any schema wrote it: 0 (robench 0.1: an untyped dataset), 1 (flat source configs) or 2."""

        def decode(data: dict, version: int) -> dict:
            dataset = data.get("dataset") or {}
            return {"dataset": DatasetRef.from_v0(dataset) if version == 0 else DatasetRef.from_json(dataset),
                    "sources": [SourceRef.from_json(s, version) for s in array(data.get("sources"), "sources")],
                    "params": AttackParams(obj(data.get("params"), "params")),
                    "stats": SetStats.from_json(data.get("stats"))}

        return read_record(cls, data, path, "set", decode)


def read_set_record(directory: str | os.PathLike) -> SetRecord:
    """The record in ``directory/set.json`` (migrated if an older robench wrote it)."""
    return read_file(SetRecord, directory, SET_JSON)


def write_set_record(directory: str | os.PathLike, record: SetRecord) -> None:
    write_json(Path(directory) / SET_JSON, record.to_json())
