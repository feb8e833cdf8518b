"""What a model is built from: :class:`ModelConfig`, its geometry and, for robench's architectures, its
:class:`DefectSpec` (where the defective layers are and how many neurons they keep).

A config identifies a model's family (:attr:`ModelConfig.family`): two models of one family differ only in seed or
mask draw, so a set made on one is gray-box to the other.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from robench.errors import RobenchError
from robench.records.codec import known, obj, plain

PLACEMENTS = ("bottom", "top", "both")
MASK_MODES = ("neuron", "channel", "shared")
REGULARIZERS = ("none", "spatial-dropout", "dropblock")
DEFECT_KEYS = ("keep", "placement", "keep_top", "mask", "widen", "mask_seed")  # what a standard model's family omits
GEOMETRY = ("num_classes", "in_channels", "input_size")


@dataclass(frozen=True)
class DefectSpec:
    """Where and how to place defective layers (and the dropout baselines)."""

    keep: float = 1.0
    placement: str = "bottom"
    keep_top: float | None = None
    mask: str = "neuron"
    widen: int = 1
    mask_seed: int = 0
    regularizer: str = "none"
    drop_keep: float = 0.9
    block_size: int = 3

    def __post_init__(self) -> None:
        for value, label in ((self.keep, "--keep"), (self.keep_top, "--keep-top"), (self.drop_keep, "drop keep")):
            if value is not None and not 0.0 < value <= 1.0:
                raise RobenchError(f"{label} must be in (0, 1], got {value}: 1 means a standard model")
        if self.placement not in PLACEMENTS:
            raise RobenchError(f"unknown placement '{self.placement}': choose one of {', '.join(PLACEMENTS)}")
        if self.mask not in MASK_MODES:
            raise RobenchError(f"unknown mask mode '{self.mask}': choose one of {', '.join(MASK_MODES)}")
        if self.regularizer not in REGULARIZERS:
            raise RobenchError(
                f"unknown regularizer '{self.regularizer}': choose one of {', '.join(REGULARIZERS)}"
            )
        if self.widen < 1:
            raise RobenchError(f"--widen must be a positive integer, got {self.widen}")

    def group_keeps(self) -> dict[str, float]:
        """Keep probability per placement group; groups left out keep every neuron."""
        keeps: dict[str, float] = {}
        if self.placement in ("bottom", "both"):
            keeps["bottom"] = self.keep
        if self.placement == "top":
            keeps["top"] = self.keep
        if self.placement == "both" or self.keep_top is not None:
            keeps["top"] = self.keep_top if self.keep_top is not None else self.keep
        return {g: k for g, k in keeps.items() if k < 1.0}

    def widen_for(self, group: str) -> int:
        """Channel multiplier for a block of ``group`` (only defective groups are widened)."""
        return self.widen if group in self.group_keeps() else 1

    @property
    def is_standard(self) -> bool:
        return not self.group_keeps()

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> DefectSpec:
        return plain(cls, data, "defect")


@dataclass(frozen=True)
class ModelConfig:
    """A model's construction settings: the architecture ``arch`` and its geometry (classes, input channels, input
    size); for robench's own architectures also ``width``, ``upsample``, ``strides``, ``ensemble`` and the
    ``defect`` spec. An imported network has no ``defect`` (None); ``extra`` holds what else identifies it (e.g. the
    ``threat_model`` of a RobustBench entry, the ``program_sha256`` of a TorchScript file)."""

    arch: str
    num_classes: int
    in_channels: int
    input_size: int
    width: int | None = None
    upsample: float = 1.0
    strides: tuple[int, ...] | None = None
    ensemble: int = 1
    defect: DefectSpec | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_robench(self) -> bool:
        """Whether this is one of robench's registered architectures (a defective CNN when ``defect`` says so)."""
        return self.defect is not None

    @property
    def keep(self) -> float | None:
        """The keep probability of the defective layers (1: a standard model); None for an imported network."""
        return self.defect.keep if self.defect else None

    @property
    def placement(self) -> str | None:
        """Where the defective layers are (bottom, top, both); None for an imported network."""
        return self.defect.placement if self.defect else None

    @property
    def is_standard(self) -> bool:
        """True when no layer of the model is defective."""
        return self.defect is None or self.defect.is_standard

    @property
    def family(self) -> str:
        """The config without the mask seed (and without the defect settings for a standard model), as JSON.

        Two models of one family differ only in seed or mask draw: they are gray-box to each other.
        """
        drop = DEFECT_KEYS if self.is_standard else ("mask_seed",)
        return json.dumps({k: v for k, v in self.flat().items() if k not in drop}, sort_keys=True, default=str)

    def build_options(self) -> dict[str, Any]:
        """The keyword arguments of ``robench.models.create_model(arch, ...)`` that build this model."""
        strides = list(self.strides) if self.strides else None
        return {**{k: getattr(self, k) for k in GEOMETRY}, "width": self.width, "upsample": self.upsample,
                "strides": strides, "ensemble": self.ensemble, **(self.defect or DefectSpec()).to_dict()}

    def flat(self) -> dict[str, Any]:
        """The config as schema 1 wrote it: one flat object (``name`` is the architecture)."""
        geometry = {"name": self.arch, **{k: getattr(self, k) for k in GEOMETRY}}
        return {**geometry, **self.build_options(), **self.extra} if self.is_robench else {**geometry, **self.extra}

    def difference(self, other: ModelConfig, defects: bool = False) -> tuple[str, Any, Any] | None:
        """The first setting (by name) in which two configs differ, with both values: among the settings other than
        the defect spec's, or with ``defects`` among where and how the defects are (placement, keep_top, mask,
        widen); None when they agree."""
        keys = ("placement", "keep_top", "mask", "widen")
        if defects:
            a, b = ({k: getattr(c.defect, k, None) for k in keys} for c in (self, other))
        else:
            a, b = ({k: v for k, v in c.flat().items() if k not in DEFECT_KEYS} for c in (self, other))
        diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        return (diff[0], a.get(diff[0]), b.get(diff[0])) if diff else None

    def to_json(self) -> dict[str, Any]:
        geometry = {"arch": self.arch, **{k: getattr(self, k) for k in GEOMETRY}}
        if not self.is_robench:
            return {**geometry, "extra": dict(self.extra)}
        return {**geometry, "width": self.width, "upsample": self.upsample,
                "strides": list(self.strides) if self.strides is not None else None, "ensemble": self.ensemble,
                "defect": self.defect.to_dict() if self.defect else None, "extra": dict(self.extra)}

    @classmethod
    def from_json(cls, data: Any, version: int = 2) -> ModelConfig:
        """A config as written by schema ``version`` (before 2: one flat object, see :meth:`from_flat`)."""
        data = obj(data, "config")
        if version < 2:
            return cls.from_flat(data)
        decoded = known(cls, data)
        if data.get("defect") is not None:
            decoded["defect"] = DefectSpec.from_json(data["defect"])
        decoded["extra"] = dict(obj(data.get("extra"), "extra", optional=True))
        return cls(**_strides(decoded))

    @classmethod
    def from_flat(cls, data: dict[str, Any]) -> ModelConfig:
        """A config from its flat form (``name`` the architecture; a robench architecture also holds its width, its
        geometry settings and every field of its defect spec): what ``create_model`` and schema 1 hold."""
        data = obj(data, "config")
        spec_keys = {f.name for f in fields(DefectSpec)}
        robench = "width" in data or bool(spec_keys & set(data))
        own = {"name", *GEOMETRY, *(("width", "upsample", "strides", "ensemble", *spec_keys) if robench else ())}
        decoded = {"arch": data["name"], **{k: data[k] for k in GEOMETRY},
                   "extra": {k: v for k, v in data.items() if k not in own}}
        if robench:
            decoded.update(known(cls, {k: v for k, v in data.items() if k in ("width", "upsample", "strides",
                                                                                "ensemble")}))
            decoded["defect"] = DefectSpec(**{k: v for k, v in data.items() if k in spec_keys})
        return cls(**_strides(decoded))

    @classmethod
    def of(cls, arch: str, **options: Any) -> ModelConfig:
        """The config of ``create_model(arch, **options)``: geometry, width ... and the defect spec's fields."""
        return cls.from_flat({"name": arch, **options})


def _strides(decoded: dict[str, Any]) -> dict[str, Any]:
    strides = decoded.get("strides")
    if isinstance(strides, list):
        decoded["strides"] = tuple(strides)
    return decoded

