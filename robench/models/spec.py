"""What model to train: :class:`ModelSpec`, the architecture with its geometry, its defects and its seed.

``robench.train`` takes one (or an architecture's name and the same fields as keywords); the training recipe is
the other half of a run (:class:`robench.training.Recipe`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from robench.checks import check_all
from robench.models.defective import DefectSpec
from robench.models.registry import model_entry

__all__ = ["GEOMETRY", "ModelSpec", "default_model_name"]

GEOMETRY = ("width", "upsample", "strides", "ensemble")  # create_model's options beside the defect spec


@dataclass(frozen=True)
class ModelSpec:
    """A model to build: ``arch`` (a registered architecture), its geometry (``width``: base channels, default
    the architecture's; ``upsample``: input scale; ``strides``; ``ensemble``: members averaged), its defect
    spec's fields (see :class:`~robench.models.DefectSpec`) and ``seed`` (weights, data order and, unless
    ``mask_seed`` is given, the masks).

    >>> ModelSpec("resnet18", keep=0.1, seed=2).defects.mask_seed
    2
    """

    arch: str
    width: int | None = None
    upsample: float = 1.0
    strides: list[int] | None = None
    ensemble: int = 1
    seed: int = 0
    keep: float = 1.0
    placement: str = "bottom"
    keep_top: float | None = None
    mask: str = "neuron"
    widen: int = 1
    mask_seed: int | None = None
    regularizer: str = "none"
    drop_keep: float = 0.9
    block_size: int = 3

    def __post_init__(self) -> None:
        model_entry(self.arch)  # an unknown architecture is named first, with suggestions
        check_all({f.name: getattr(self, f.name) for f in fields(self)})
        self.defects  # noqa: B018  (the defect spec checks its own fields)

    @property
    def defects(self) -> DefectSpec:
        """The defect spec (its mask seed is ``mask_seed``, else ``seed``)."""
        values = {f.name: getattr(self, f.name) for f in fields(DefectSpec)}
        return DefectSpec(**{**values, "mask_seed": self.seed if self.mask_seed is None else self.mask_seed})

    def geometry(self) -> dict:
        """``create_model``'s geometry keywords (width, upsample, strides, ensemble)."""
        return {k: getattr(self, k) for k in GEOMETRY}

    def default_name(self, label_smoothing: float = 0.0, adv_train: bool = False) -> str:
        """The name ``robench.train`` saves this model under when none is given (see :func:`default_model_name`)."""
        return default_model_name(self.arch, self.defects, seed=self.seed, ensemble=self.ensemble,
                                  upsample=self.upsample, strides=self.strides, label_smoothing=label_smoothing,
                                  adv_train=adv_train)

    def to_dict(self) -> dict:
        return asdict(self)


def default_model_name(arch: str, spec: DefectSpec, *, seed: int = 0, ensemble: int = 1, upsample: float = 1.0,
                       strides: list[int] | None = None, label_smoothing: float = 0.0, adv_train: bool = False) -> str:
    """Readable default name: the architecture for a standard model, plus what makes it different.

    >>> default_model_name("resnet18", DefectSpec(keep=0.1))
    'resnet18-keep0.1-bottom'
    """
    parts = [arch]
    parts += [f"keep{k:g}-{group}" for group, k in sorted(spec.group_keeps().items())]
    if spec.mask != "neuron" and not spec.is_standard:
        parts.append(spec.mask)
    if spec.widen > 1 and not spec.is_standard:
        parts.append(f"x{spec.widen}")
    if spec.regularizer != "none":
        parts.append(spec.regularizer)
    parts += [f"en{ensemble}"] if ensemble > 1 else []
    parts += [f"up{upsample:g}"] if upsample != 1 else []
    parts += ["s" + "".join(map(str, strides))] if strides else []
    parts += [f"ls{label_smoothing:g}"] if label_smoothing else []
    parts += ["adv"] if adv_train else []
    parts += [f"seed{seed}"] if seed else []
    return "-".join(parts)
