"""Which data a model was trained on or a set was made from: :class:`DatasetRef`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from robench.records.codec import known, obj


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
        return label + (f"@{self.image_size}px" if self.stream else "")

    @property
    def stream(self) -> bool:
        """Whether the images are streamed from their files (read batch by batch, resized to ``image_size``)."""
        return bool(self.options.get("stream"))

    @property
    def image_size(self) -> int | None:
        """The size a folder's images are resized to, when recorded."""
        return self.options.get("image_size")

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
        data = known(cls, obj(data, "dataset"))
        if data.get("classes") is not None:
            data["classes"] = tuple(str(c) for c in data["classes"])
        data["options"] = dict(data.get("options") or {})
        return cls(**data)

    @classmethod
    def from_v0(cls, data: dict[str, Any]) -> DatasetRef:
        """The reference of a robench 0.1 record: ``{"dataset": "digits" | "folder:/abs/path", ...}``."""
        data = obj(data, "dataset")
        name, root = str(data.get("dataset", "?")), None
        if name.startswith("folder:"):
            name, root = "folder", name.split(":", 1)[1]
        return cls(name=name, num_classes=int(data.get("num_classes", 0)), in_channels=int(data.get("in_channels", 0)),
                   input_size=int(data.get("input_size", 0)), n_train=int(data.get("n_train", 0)),
                   n_test=int(data.get("n_test", 0)), root=root)
