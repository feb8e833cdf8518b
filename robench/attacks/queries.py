"""Counting the queries of a black-box attack, per example, as the model sees them.

A batched query attack evaluates shrinking subsets of its batch, so a counter of forward calls only sees batch
sizes. :class:`QueryCounter` wraps the model and knows which example each row belongs to:

- a call with N rows (the whole batch) is row i = example i (Foolbox's HopSkipJump only makes such calls;
  ART's SquareAttack checks the whole batch once per iteration);
- a call with fewer rows is the examples the last whole-batch call found still classified correctly, in
  order (ART's SquareAttack evaluates exactly those); any other size is an error, never a silent miscount.

A row identical to one of the last two images evaluated for its example is answered from a cache and costs no
query (ART re-evaluates the current image and re-checks the whole batch every iteration: without the cache it
would spend 3 queries per iteration instead of the paper's 1). The clean images are in the cache from the start
(set generation has classified them already, as for every method). The counter also keeps, per example, the
closest adversarial image it has seen, and raises :class:`BudgetSpent` rather than let an example exceed its
budget when ``enforce`` is set.
"""

from __future__ import annotations

import math

import torch
from torch import nn

CACHE = 2  # images remembered per example


class BudgetSpent(Exception):
    """An example's query budget would be exceeded by the next call (raised inside the attack, caught outside)."""


def distance(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-row ||delta|| in ``norm`` ('linf' or 'l2'): delta (N, ...) -> (N,)."""
    return torch.linalg.vector_norm(delta.flatten(1), math.inf if norm == "linf" else 2, dim=1)


def project(clean: torch.Tensor, adv: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """``adv`` (N, C, H, W) moved into the ``norm`` ball of radius ``eps`` around ``clean`` (and [0, 1])."""
    delta = adv - clean
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        norms = distance(delta, "l2").clamp_min(1e-12)
        delta = delta * (eps / norms).clamp(max=1.0).view(-1, *[1] * (delta.dim() - 1))
    return (clean + delta).clamp(0.0, 1.0)


class QueryCounter(nn.Module):
    """``model`` behind a per-example query count; ``clean`` (N, C, H, W) and ``labels`` (N,) are the batch.

    ``counts`` (N,) int64: model evaluations spent on each example's images. ``budget`` (int or (N,)) caps them
    when ``enforce``. ``best`` (N, C, H, W) / ``best_dist`` (N,): the closest adversarial (in ``norm``) seen so
    far for each example (the clean image and inf when none).
    """

    def __init__(self, model: nn.Module, clean: torch.Tensor, labels: torch.Tensor, *, norm: str = "l2",
                 budget: int | torch.Tensor | None = None, enforce: bool = False,
                 clean_logits: torch.Tensor | None = None) -> None:
        super().__init__()
        self.model = model
        self.clean, self.labels, self.norm, self.enforce = clean, labels, norm, enforce
        n = len(clean)
        self.counts = torch.zeros(n, dtype=torch.long, device=clean.device)
        self.budget = None if budget is None else torch.as_tensor(budget, device=clean.device).expand(n)
        self.best = clean.clone()
        self.best_dist = torch.full((n,), math.inf, device=clean.device)
        if clean_logits is None:  # ``clean_logits`` (N, K): the clean batch's, when the caller has them already
            with torch.no_grad():
                clean_logits = model(clean)
        logits = clean_logits.float()
        self.clean_logits = logits
        self.all = torch.arange(n, device=clean.device)
        self.cache_x = torch.full((n, CACHE, *clean.shape[1:]), math.nan, device=clean.device)  # NaN: never equal
        self.cache_logits = logits.new_zeros((n, CACHE, logits.shape[1]))
        self.cache_age = torch.zeros((n, CACHE), dtype=torch.long, device=clean.device)
        self._tick = 0
        self._remember(self.all, clean, logits)
        self.subset = (logits.argmax(1) == labels).nonzero().flatten()
        self.eval()

    def _remember(self, idx: torch.Tensor, x: torch.Tensor, logits: torch.Tensor) -> None:
        """Store rows x (k, ...) with their logits in the least recently used slot of examples idx (k,)."""
        if not len(idx):
            return
        slot = self.cache_age[idx].argmin(1)  # an empty slot has age 0
        self._tick += 1
        self.cache_x[idx, slot] = x
        self.cache_logits[idx, slot] = logits
        self.cache_age[idx, slot] = self._tick

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = len(self.clean)
        whole = len(x) == n
        idx = self.all if whole else self.subset
        if len(idx) != len(x):
            raise RuntimeError(f"query counter: a call with {len(x)} rows is neither the batch ({n}) nor the "
                               f"{len(idx)} examples still classified correctly; the attack library changed")
        cached = self.cache_x if whole else self.cache_x[idx]
        # (k, CACHE) exact equality, as a zero difference (3x faster than ==); empty slots hold NaN: never equal
        same = (cached.flatten(2) - x.flatten(1)[:, None]).abs_().amax(2) == 0
        hit = same.any(1)
        if not bool(hit.any()):  # the common case: every row is new
            out = self._evaluate(idx, x)
        else:
            out = torch.empty((len(x), self.cache_logits.shape[2]), device=x.device)
            rows, slot = hit.nonzero().flatten(), same[hit].float().argmax(1)
            out[rows] = self.cache_logits[idx[rows], slot]
            self._tick += 1
            self.cache_age[idx[rows], slot] = self._tick
            miss = (~hit).nonzero().flatten()
            if len(miss):
                out[miss] = self._evaluate(idx[miss], x[miss])
        self._track_best(idx, x, out, whole)
        if whole:
            self.subset = (out.argmax(1) == self.labels).nonzero().flatten()
        return out

    def _evaluate(self, spent: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The model's logits (k, K) for rows x (k, ...) of examples ``spent`` (k,), charged one query each."""
        if self.enforce and self.budget is not None and bool((self.counts[spent] >= self.budget[spent]).any()):
            raise BudgetSpent
        logits = self.model(x).float()
        self.counts[spent] += 1
        self._remember(spent, x, logits)
        return logits

    def _track_best(self, idx: torch.Tensor, x: torch.Tensor, logits: torch.Tensor, whole: bool) -> None:
        adv = logits.argmax(1) != (self.labels if whole else self.labels[idx])
        dist = distance(x - (self.clean if whole else self.clean[idx]), self.norm)
        better = adv & (dist < self.best_dist[idx])
        if better.any():
            self.best[idx[better]] = x[better]
            self.best_dist[idx[better]] = dist[better]
