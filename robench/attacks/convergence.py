"""Convergence of the Boundary attack: the score's median at every doubling of steps, and whether it settled.

The attack records each example's L2 norm at the checkpoints ``steps, steps/2, steps/4, ...`` of one run; the
score (median over examples of ||delta||_2^2 / pixels) is taken at each checkpoint. The run counts as converged
when the last doubling (steps/2 -> steps) starts at >= 5000 steps and moved that median by at most ``tolerance``
(relative) and by less than an earlier doubling did (so a run still in the attack's slow start does not pass).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from robench.records import TraceStats

MIN_CHECKPOINT = 100  # the trace starts at the first halving of steps that is >= this (or at steps itself)
SETTLED = 5000  # a doubling that starts earlier is still in the attack's slow start (see Trace.converged)


def checkpoints(steps: int, smallest: int = MIN_CHECKPOINT) -> list[int]:
    """Step counts at which the trace is taken: steps >> j for j = 0, 1, ... down to ``smallest``; ascending."""
    out = [steps]
    while out[-1] // 2 >= smallest:
        out.append(out[-1] // 2)
    return sorted(out)


@dataclass(frozen=True)
class Trace:
    """The score at each checkpoint: ``steps`` ascending, ``median`` of ||delta||_2^2 / pixels at each.

    ``change`` is the relative drop of the median over the last doubling, ``(m[-2] - m[-1]) / m[-1]``
    (NaN with a single checkpoint); see :attr:`converged`.
    """

    steps: list[int]
    median: list[float]
    n: int
    tolerance: float
    settled: int = SETTLED

    @property
    def changes(self) -> list[float]:
        """Relative drop of the median over each doubling, ``(m[k-1] - m[k]) / m[k]`` (NaN where undefined)."""
        out = []
        for before, after in zip(self.median[:-1], self.median[1:], strict=True):
            ok = math.isfinite(before) and math.isfinite(after) and after > 0
            out.append((before - after) / after if ok else math.nan)
        return out

    @property
    def change(self) -> float:
        return self.changes[-1] if self.changes else math.nan

    @property
    def converged(self) -> bool:
        """The last doubling starts at >= ``settled`` steps (default ``SETTLED``), moved the median by at most
        ``tolerance``, and by less than an earlier doubling did.

        The first and last conditions keep a run still in the attack's slow start from passing: Foolbox adapts its
        step sizes at most every ~1000 steps, so the median first barely moves (0.5-1.2% per doubling up to 1562
        steps on a ResNet-18, docs/benchmarks.md), then falls fast, then settles.
        """
        earlier = [c for c in self.changes[:-1] if math.isfinite(c)]
        return bool(len(self.steps) > 1 and self.steps[-2] >= self.settled and self.change <= self.tolerance
                    and earlier and max(earlier) > self.change)

    @property
    def reason(self) -> str:
        """Why the trace does not show convergence ('' when it does)."""
        if self.converged:
            return ""
        if len(self.steps) < 3 or self.steps[-2] < self.settled:
            return (f"a run of {self.steps[-1]} steps is still in the attack's slow start (the last doubling must "
                    f"start at >= {self.settled} steps)")
        moved = f"the last doubling ({self.steps[-2]} -> {self.steps[-1]} steps) moved the median by {self.change:.1%}"
        if not self.change <= self.tolerance:
            return f"{moved} (tolerance {self.tolerance:.1%})"
        return f"{moved}, more than any earlier doubling"

    def to_json(self) -> dict:
        return {"steps": self.steps, "median": self.median, "n": self.n, "tolerance": self.tolerance,
                "settled": self.settled, "change": None if math.isnan(self.change) else self.change,
                "converged": self.converged}

    @classmethod
    def from_json(cls, data: TraceStats | dict, tolerance: float | None = None) -> Trace:
        """A trace read back from a set's record (``SetRecord.stats.trace``, or its JSON); ``tolerance`` overrides the
        recorded one."""
        stats = data if isinstance(data, TraceStats) else TraceStats.from_json(data)
        return cls([int(s) for s in stats.steps], [float(m) for m in stats.median], stats.n,
                   float(stats.tolerance if tolerance is None else tolerance), stats.settled)


def trace(l2: torch.Tensor, steps: list[int], pixels: int, tolerance: float, settled: int = SETTLED) -> Trace:
    """The trace of per-example L2 norms ``l2`` (N, K) taken at ``steps`` (K,); NaN rows (not attacked) are left out."""
    values = l2.double().pow(2).numpy() / pixels
    values = values[~np.isnan(values).any(1)] if values.size else values.reshape(0, len(steps))
    medians = [float(np.median(values[:, k])) if len(values) else math.nan for k in range(len(steps))]
    return Trace(list(steps), medians, len(values), tolerance, settled)


@dataclass(frozen=True)
class EarlyStop:
    """Stop each example of a Boundary run once its own trace meets the rule of :attr:`Trace.converged`.

    At every checkpoint an example's squared L2 norm at the checkpoints so far is a trace of one example; the
    example stops when that trace is converged (its last doubling starts at >= ``settled`` steps, moved it by at
    most ``tolerance``, and by less than an earlier doubling did). ``floor`` is Foolbox's own convergence
    threshold on the source step, kept for the examples still running.
    """

    tolerance: float
    settled: int = SETTLED
    floor: float = 1e-7

    def converged(self, steps: list[int], l2: torch.Tensor) -> torch.Tensor:
        """(N,) bool: which rows of the norms ``l2`` (N, K) at ``steps`` (K,) have converged."""
        values = l2.double().pow(2)
        return torch.tensor([Trace(list(steps), row.tolist(), 1, self.tolerance, self.settled).converged
                             for row in values], dtype=torch.bool)
