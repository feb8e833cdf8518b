"""How a model was trained: the :class:`Recipe` (optimisation settings) and its :class:`TrainingHistory` (one
:class:`Epoch` of loss, accuracy, learning rate and speed per epoch)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, overload

from robench.errors import UsageError
from robench.records.codec import array, plain, without_none

SCHEDULES = ("step", "onecycle")


@dataclass
class Recipe:
    """Optimisation settings (defaults: the papers' CIFAR-10 recipe, appendix D).

    ``schedule``: ``step`` divides the lr by 1/``gamma`` at each of ``milestones`` (epochs); ``onecycle`` warms
    the lr up linearly from lr/25 over the first ``warmup`` fraction of the steps, then decays it linearly to
    ~0, stepping every batch. ``nesterov``: Nesterov momentum.
    """

    epochs: int = 350
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    milestones: list[int] = field(default_factory=lambda: [150, 250])
    gamma: float = 0.1
    schedule: str = "step"
    warmup: float = 0.25
    nesterov: bool = False
    label_smoothing: float = 0.0
    augment: str = "default"
    adv_train: bool = False
    adv_eps: float = 8 / 255
    adv_step: float = 2 / 255
    adv_steps: int = 7

    def check(self) -> Recipe:
        late = [m for m in self.milestones if not 1 <= m < self.epochs]
        problems = [
            (self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}"),
            (self.lr > 0, f"--lr must be > 0, got {self.lr}"),
            (0 <= self.label_smoothing < 1, f"--label-smoothing must be in [0, 1), got {self.label_smoothing}"),
            (self.schedule in SCHEDULES, f"unknown schedule '{self.schedule}': choose one of {', '.join(SCHEDULES)}"),
            (0 < self.warmup < 1, f"warmup must be a fraction of the run in (0, 1), got {self.warmup}"),
            (self.schedule == "step" or not self.milestones,
             "--milestones apply to the step schedule; the one-cycle schedule (--preset fast) has none: drop them"),
            (not late, f"--milestones {','.join(map(str, self.milestones))}: milestone {late[0] if late else ''} is "
                       f"not within the run's {self.epochs} epochs, so the learning rate would never use it; give "
                       f"epochs between 1 and {self.epochs - 1}, or leave --milestones out to scale the preset's"),
        ]
        for ok, message in problems:
            if not ok:
                raise UsageError(message)
        return self

    def summary(self) -> str:
        """'3 epochs, lr 0.1 /10 at epochs 1,2, augmentation flip': what a run used."""
        ms = self.milestones
        decay = f" /{1 / self.gamma:g} at epoch{'s' if len(ms) > 1 else ''} {','.join(map(str, ms))}" if ms else \
            " constant"
        if self.schedule == "onecycle":
            decay = f" one-cycle (peak {self.lr:g})"
        return f"{self.epochs} epochs, lr {self.lr:g}{decay}, augmentation {self.augment}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> Recipe:
        """A recipe as any schema wrote it (settings robench added later, missing from older records, take the
        defaults robench trained with before it had them: a step schedule, no Nesterov momentum)."""
        return plain(cls, data, "recipe")


@dataclass(frozen=True)
class Epoch:
    """One epoch of training: its number (from 1), the mean training loss and accuracy over its batches, the
    learning rate after it, its wall time and its speed."""

    epoch: int
    train_loss: float = math.nan
    train_accuracy: float = math.nan
    lr: float | None = None
    seconds: float | None = None
    images_per_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        return without_none(asdict(self))


@dataclass(frozen=True)
class TrainingHistory(Sequence):
    """The epochs of a training run, in order: a sequence of :class:`Epoch` (``len`` is the epochs trained)."""

    epochs: tuple[Epoch, ...] = ()

    @overload
    def __getitem__(self, index: int) -> Epoch: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Epoch]: ...

    def __getitem__(self, index):
        return self.epochs[index]

    def __len__(self) -> int:
        return len(self.epochs)

    def __iter__(self) -> Iterator[Epoch]:
        return iter(self.epochs)

    @property
    def seconds(self) -> float:
        """The wall time of all epochs together."""
        return sum(e.seconds or 0.0 for e in self.epochs)

    def to_json(self) -> list[dict[str, Any]]:
        return [e.to_json() for e in self.epochs]

    @classmethod
    def of(cls, rows: Iterable[Mapping[str, Any]]) -> TrainingHistory:
        """The history of per-epoch rows, as the training loop and every schema write them."""
        return cls(tuple(plain(Epoch, dict(row) if isinstance(row, Mapping) else row, "history")
                         for row in rows))

    @classmethod
    def from_json(cls, data: Any) -> TrainingHistory:
        return cls.of(array(data, "history"))
