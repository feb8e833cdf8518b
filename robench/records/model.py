"""A saved model's record, :class:`ModelRecord`: how to rebuild it, what data it knows, how it was made and how
well it does; read and written as ``model.json``."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from robench.files import write_json
from robench.records.codec import SCHEMA, read_file, read_record
from robench.records.config import ModelConfig
from robench.records.dataset import DatasetRef
from robench.records.imports import Origin
from robench.records.recipe import Recipe, TrainingHistory

MODEL_JSON = "model.json"


@dataclass
class ModelRecord:
    """A saved model: how to rebuild it, what data it knows, how it was made and how well it does.

    ``config`` holds the construction settings (``config.arch`` is the architecture); ``recipe`` and ``history``
    how robench trained it (None and empty for an import); ``origin`` where it came from. ``path`` is where the
    record was read from; it is never written.
    """

    name: str
    config: ModelConfig
    dataset: DatasetRef
    weights_sha256: str = ""
    origin: Origin = field(default_factory=Origin)
    seed: int | None = None
    preset: str | None = None
    recipe: Recipe | None = None
    clean_accuracy: float | None = None
    train_accuracy: float | None = None
    history: TrainingHistory = field(default_factory=TrainingHistory)
    wall_time_s: float | None = None
    device: str | None = None
    precision: str = "fp32"
    versions: dict[str, str] = field(default_factory=dict)
    created: str = ""
    schema: int = SCHEMA
    path: Path | None = field(default=None, compare=False)

    @property
    def arch(self) -> str:
        return self.config.arch

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
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "path"}
        return {**data, "config": self.config.to_json(), "dataset": self.dataset.to_json(),
                "origin": self.origin.to_json(), "recipe": self.recipe.to_json() if self.recipe else None,
                "history": self.history.to_json(), "kind": "model", "schema": SCHEMA}

    @classmethod
    def from_json(cls, data: dict[str, Any], path: Path | str = "<record>") -> ModelRecord:
        """A record as any schema wrote it: 0 (robench 0.1: an untyped dataset; every model trained by robench),
        1 (a flat config) or 2."""

        def decode(data: dict, version: int) -> dict:
            recipe = data.get("recipe")
            return {"config": ModelConfig.from_json(data.get("config"), version),
                    "dataset": DatasetRef.from_v0(data.get("dataset") or {}) if version == 0 else
                    DatasetRef.from_json(data.get("dataset")),
                    "origin": Origin() if version == 0 else Origin.from_json(data.get("origin")),
                    "recipe": None if recipe is None else Recipe.from_json(recipe),
                    "history": TrainingHistory.from_json(data.get("history"))}

        return read_record(cls, data, path, "model", decode)


CHANCE_LEVEL = 0.001  # a model is at chance when guessing would reach its accuracy this often or more
CHANCE_RATIO = 1.25  # ... or when its accuracy is below 1.25 / classes


def near_chance(accuracy: float | None, classes: int, n: int) -> bool:
    """True when ``accuracy`` on ``n`` test images of ``classes`` classes is near chance (1/classes): below
    ``CHANCE_RATIO``/classes, or not significantly above chance (a guesser's number of correct answers,
    Binomial(n, 1/classes), reaches it with probability at least ``CHANCE_LEVEL``). Unknown accuracy: False."""
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
    """The record in ``directory/model.json`` (migrated if an older robench wrote it)."""
    return read_file(ModelRecord, directory, MODEL_JSON)


def write_model_record(directory: str | os.PathLike, record: ModelRecord) -> None:
    write_json(Path(directory) / MODEL_JSON, record.to_json())
