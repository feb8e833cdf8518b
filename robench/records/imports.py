"""Where a model came from: its :class:`Origin` (trained by robench, or imported) and, for an import, the
:class:`ImportDetails` that rebuild the network (``robench.importers``) and say how it was checked."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from robench.records.codec import known, obj, unknown, without_none


@dataclass(frozen=True)
class ImportDetails:
    """What ``robench import`` recorded about an outside model (unset fields are None, and not written).

    Every import: ``form`` (the importer that rebuilds it), ``model_classes`` / ``model_channels`` (what the
    network outputs and takes), ``input_size``, ``normalisation`` (where ``mean``/``std`` came from), ``file`` and
    ``source_sha256`` (the file imported, for file forms). Wrapped networks also: ``mean``, ``std``, ``gray_to_rgb``,
    ``num_classes`` (the dataset's), ``class_map`` (model output -> dataset label, when given) and, for programs
    stored beside the weights, ``program`` / ``program_sha256``. Each form's own: ``name`` (torchvision, timm,
    RobustBench), ``weights``, ``weights_url``, ``weights_input_size``, ``pretrained``, ``rb_dataset``,
    ``threat_model``, ``timm_name``, ``constants`` / ``constants_sha256`` (exported programs), ``module``,
    ``function``, ``module_sha256`` (python). ``extra``: what a form registered elsewhere records.
    """

    form: str | None = None
    model_classes: int | None = None
    model_channels: int | None = None
    input_size: int | None = None
    normalisation: str | None = None
    # the wrapper robench stores an outside network in
    num_classes: int | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    gray_to_rgb: bool | None = None
    class_map: dict[str, int] | None = None
    # the file imported, and a program stored beside the weights
    file: str | None = None
    source_sha256: str | None = None
    program: str | None = None
    program_sha256: str | None = None
    # torchvision, timm, RobustBench
    name: str | None = None
    weights: str | None = None
    weights_url: str | None = None
    weights_input_size: list[int] | None = None
    pretrained: bool | None = None
    rb_dataset: str | None = None
    threat_model: str | None = None
    timm_name: str | None = None
    # exported programs, python:MODULE:FUNCTION
    constants: bool | None = None
    constants_sha256: str | None = None
    module: str | None = None
    function: str | None = None
    module_sha256: str | None = None
    # what a form registered elsewhere records
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def class_pairs(self) -> list[tuple[int, int]]:
        """The class map as (model output, dataset label) pairs, by output ([] without a class map)."""
        return sorted((int(k), v) for k, v in (self.class_map or {}).items())

    def updated(self, values: Mapping[str, Any]) -> ImportDetails:
        """These details with ``values`` (an importer's recorded entries, by name) set; names that are no field go
        into ``extra``."""
        return replace(self, **known(ImportDetails, dict(values)),
                       extra={**self.extra, **unknown(ImportDetails, dict(values))})

    def to_json(self) -> dict[str, Any]:
        """One flat object, as schema 1 wrote it: the fields that are set, then ``extra``'s entries."""
        data = without_none({f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"})
        return {**data, **self.extra}

    @classmethod
    def from_json(cls, data: Any) -> ImportDetails:
        return cls().updated(obj(data, "details", optional=True))


@dataclass(frozen=True)
class Origin:
    """Where a model came from: ``train`` (robench trained it) or ``import`` (``spec`` says from what, ``details``
    how)."""

    kind: str = "train"
    spec: str | None = None
    details: ImportDetails = field(default_factory=ImportDetails)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "details": self.details.to_json()}

    @classmethod
    def from_json(cls, data: Any) -> Origin:
        data = obj(data, "origin", optional=True)
        return cls(**{**known(cls, data), "details": ImportDetails.from_json(data.get("details"))})
