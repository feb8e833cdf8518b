"""Query-based black-box attacks (square, hopskipjump): budgets, norms, query counts checked against the rows the
model actually saw, seeding, backend agreement, bad input."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import robench
from robench.attacks.generate import perturb_output
from robench.attacks.queries import QueryCounter
from robench.datasets import load_dataset
from robench.errors import RobenchError

# (method, backend, params): every query method x backend x norm it supports, at small budgets
CASES = [
    ("square", "robench", {"norm": "linf", "queries": 60}),
    ("square", "robench", {"norm": "l2", "queries": 60, "eps": 2.0}),
    ("square", "art", {"norm": "linf", "queries": 60}),
    ("hopskipjump", "foolbox", {"norm": "l2", "queries": 300, "eps": 3.0, "init_directions": 10}),
    ("hopskipjump", "foolbox", {"norm": "linf", "queries": 300, "init_directions": 10}),
]
IDS = [f"{m}-{b}-{p['norm']}" for m, b, p in CASES]


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def batch(trained_ws, digits):
    """The tiny model and 24 test digits it classifies correctly."""
    model = robench.load_model(str(Path(trained_ws) / "models" / "tiny")).eval()
    x, y = digits.test.floats(slice(0, 64)), digits.test.labels[:64]
    with torch.no_grad():
        right = (model(x).argmax(1) == y).nonzero().flatten()[:24]
    return model, x[right], y[right]


def norm_of(delta: torch.Tensor, norm: str) -> torch.Tensor:
    flat = delta.flatten(1)
    return flat.abs().amax(1) if norm == "linf" else flat.norm(dim=1)


class Rows(nn.Module):
    """Counts the forward rows the wrapped model sees, per example, identifying each row by the clean image it is
    within ``radius`` of (Linf); rows near no clean image are counted apart."""

    def __init__(self, model: nn.Module, clean: torch.Tensor, radius: float) -> None:
        super().__init__()
        self.model, self.clean, self.radius = model, clean, radius
        self.per_example = torch.zeros(len(clean), dtype=torch.long)
        self.total = 0
        self.eval()  # robench restores a model's mode after an attack, children included

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.total += len(x)
        dist = (x[:, None] - self.clean[None]).flatten(2).abs().amax(2)  # (rows, N)
        near = dist <= self.radius + 1e-6
        assert (near.sum(1) <= 1).all(), "test images closer than 2 eps: identification is ambiguous"
        self.per_example += near.sum(0)
        return self.model(x)


class Calls(nn.Module):
    """Counts the rows the wrapped model sees."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.total = model, 0
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.total += len(x)
        return self.model(x)


@pytest.mark.parametrize("method,backend,params", CASES, ids=IDS)
def test_sets_within_budget_and_fooling(trained_ws, ws, digits, method, backend, params):
    rec = robench.attack(str(Path(trained_ws) / "models" / "tiny"), method, backend=backend, n=16, workspace=ws,
                         seed=1, **params)
    s = robench.load_set(rec.name, ws)
    assert len(s) > 0, f"{method}/{backend} fooled nothing"
    assert rec.params["norm"] == params["norm"] and rec.params["queries"] == params["queries"]
    eps = rec.params["eps"]
    assert eps == params.get("eps", 16 / 255 if params["norm"] == "linf" else eps)
    assert s.adv.min() >= 0 and s.adv.max() <= 1
    assert (norm_of(s.adv - s.clean, params["norm"]) <= eps * (1 + 1e-5)).all()
    with torch.no_grad():
        assert (robench.load_model(str(Path(trained_ws) / "models" / "tiny"))(s.adv).argmax(1) != s.labels).all()
    q = s.extra["queries"]
    assert q.dtype == torch.long and len(q) == len(s) and (q >= 1).all() and (q <= params["queries"]).all()
    stats = rec.stats.queries
    assert stats.over == "kept examples" and stats.n == len(s) and stats.budget == params["queries"]
    assert stats.median == float(np.median(q.numpy())) and stats.max == int(q.max())
    listed = robench.list_sets(ws)
    assert listed.loc[listed["name"] == rec.name, "median_queries"].item() == stats.median


@pytest.mark.parametrize("backend", ["robench", "art"])
def test_square_counts_are_the_rows_the_model_saw(batch, backend):
    model, x, y = batch
    eps, budget = 12 / 255, 40
    rows = Rows(model, x, eps)
    out = perturb_output(rows, x, y, "square", backend, seed=0, eps=eps, queries=budget)
    q = out.extra["queries"].cpu()
    uncounted = len(x) if backend == "art" else 0  # QueryCounter classifies the clean batch once, uncharged
    assert rows.total == q.sum() + uncounted
    assert torch.equal(rows.per_example - (1 if backend == "art" else 0), q)
    assert q.max() <= budget and q.min() >= 1
    # an example stops costing queries once fooled; ART's no-op proposals (a square already at the bound) are free
    with torch.no_grad():
        fooled = (model(out.adv).argmax(1) != y).cpu()
    assert fooled.any() and (q[fooled] < budget).any()
    if backend == "robench":
        assert (q[~fooled] == budget).all()


def test_hopskipjump_counts_and_budget(batch):
    model, x, y = batch
    budget = 200
    rows = Calls(model)
    out = perturb_output(rows, x, y, "hopskipjump", seed=0, queries=budget, eps=3.0, init_directions=10)
    q = out.extra["queries"].cpu()
    assert (q <= budget).all() and q.max() == budget  # the budget, not Foolbox's step count, ends the run
    # every row the model saw is charged to one example, except one uncharged classification of each clean image
    assert rows.total - q.sum() == len(x)


def test_query_counter_caches_and_enforces(batch):
    model, x, y = batch
    counter = QueryCounter(model, x, y, norm="linf", budget=2, enforce=True)
    counter(x)  # the clean images are cached: free
    assert counter.counts.sum() == 0
    noisy = (x + 0.01).clamp(0, 1)
    counter(noisy)
    counter(noisy)  # the same rows again: answered from the cache
    assert (counter.counts == 1).all()
    counter((x - 0.01).clamp(0, 1))
    assert (counter.counts == 2).all()
    from robench.attacks.queries import BudgetSpent

    with pytest.raises(BudgetSpent):
        counter((x + 0.02).clamp(0, 1))
    with pytest.raises(RuntimeError, match="neither the batch"):
        counter(x[:1]) if len(counter.subset) != 1 else counter(x[:2])


@pytest.mark.parametrize("channels", [1, 3])
def test_square_never_proposes_a_no_op(channels):
    """Every Linf proposal changes its example's current image (the reference code draws the signs again when the
    window would not change), stays within eps of the clean image and in [0, 1], and changes one square only."""
    from robench.attacks.square import _propose_linf

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(256, channels, 16, 16, generator=gen)
    x[:, :, :4] = 0.0  # clipped pixels: clean - eps and 0 are the same value there
    eps = 8 / 255
    best = (x + eps).clamp(0, 1)  # every window uniform: a fresh sign equals the current one half the time or more
    with torch.random.fork_rng():
        torch.manual_seed(0)
        new = _propose_linf(x, best, eps, p=0.05)
    changed = new != best
    assert changed.flatten(1).any(1).all()
    assert ((new - x).abs() <= eps + 1e-7).all() and new.min() >= 0 and new.max() <= 1
    rows, cols = changed.any(1).any(2), changed.any(1).any(1)  # (k, W), (k, H): the changed square's extent
    assert (rows.sum(1) <= 4).all() and (cols.sum(1) <= 4).all()  # s = round(sqrt(0.05 * 256)) = 4


def test_query_counter_cache_is_exact(batch):
    """A row one float step away from a cached image is a new query; answers from the cache are the logits the
    model gave; NaN rows are never answered from the cache (empty slots hold NaN)."""
    model, x, y = batch
    counter = QueryCounter(model, x, y, norm="l2")
    nudged = x.clone()
    at = int(x[0].argmax())  # the brightest pixel: one float step down stays a normal float (no denormals)
    nudged[0].view(-1)[at] = torch.nextafter(x[0].view(-1)[at], torch.tensor(-1.0))
    assert nudged[0].view(-1)[at] > 0.5 and not torch.equal(nudged, x)
    first = counter(nudged)
    assert counter.counts.tolist() == [1] + [0] * (len(x) - 1)
    assert torch.equal(counter(nudged), first) and counter.counts.tolist() == [1] + [0] * (len(x) - 1)
    with torch.no_grad():
        assert torch.allclose(first, model(nudged).float(), atol=1e-5)
    holes = x.clone()
    holes[:, 0, 0, 0] = math.nan
    counter(holes)
    counter(holes)
    assert counter.counts.tolist() == [3] + [2] * (len(x) - 1)


@pytest.mark.parametrize("method,backend,params", [CASES[0], CASES[1], CASES[2], CASES[3]], ids=IDS[:4])
def test_same_seed_same_images(batch, method, backend, params):
    model, x, y = batch
    a = perturb_output(model, x[:8], y[:8], method, backend, seed=3, **params)
    b = perturb_output(model, x[:8], y[:8], method, backend, seed=3, **params)
    c = perturb_output(model, x[:8], y[:8], method, backend, seed=4, **params)
    assert torch.equal(a.adv, b.adv) and torch.equal(a.extra["queries"], b.extra["queries"])
    assert not torch.equal(a.adv, c.adv)


def test_square_backends_agree(batch, trained_ws, digits):
    """Same model, images, eps and budget: the success rates of the two Square backends differ by <= 0.15 (about two
    standard deviations of the difference of two success rates on 48 images). ART draws one square position and
    sign per iteration for the whole batch where the reference draws one per example, hence the tolerance."""
    model = batch[0]
    x, y = digits.test.floats(slice(0, 100)), digits.test.labels[:100]
    with torch.no_grad():
        right = (model(x).argmax(1) == y).nonzero().flatten()[:48]
    x, y = x[right], y[right]
    rates = {}
    for backend in ("robench", "art"):
        adv = perturb_output(model, x, y, "square", backend, seed=0, eps=16 / 255, queries=100).adv
        with torch.no_grad():
            rates[backend] = (model(adv).argmax(1) != y).float().mean().item()
    assert 0.2 < rates["robench"] < 1.0
    assert abs(rates["robench"] - rates["art"]) <= 0.15, rates


@pytest.mark.parametrize("kwargs,message", [
    ({"method": "square", "queries": 0}, "queries = 0: expected a whole number >= 1"),
    ({"method": "hopskipjump", "queries": 0}, "queries = 0: expected a whole number >= 1"),
    ({"method": "square", "norm": "l1"}, "does not support --norm l1: use --norm linf or l2"),
    ({"method": "hopskipjump", "norm": "l0"}, "does not support --norm l0"),
    ({"method": "square", "backend": "art", "norm": "l2"}, "use --backend robench"),
    ({"method": "square", "backend": "foolbox"}, "Foolbox 3 has no Square"),
    ({"method": "hopskipjump", "backend": "art"}, "unseeded"),
    ({"method": "pgd", "queries": 10}, "pgd takes no --queries"),
])
def test_bad_input(trained_ws, ws, kwargs, message):
    with pytest.raises(RobenchError) as info:
        robench.attack(str(Path(trained_ws) / "models" / "tiny"), kwargs.pop("method"), workspace=ws, n=4, **kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not (Path(ws) / "sets").exists() or not any((Path(ws) / "sets").iterdir())


def test_norm_defaults_and_names():
    from robench.attacks.registry import method_spec, name_suffix, resolve_params

    spec = method_spec("square")
    assert resolve_params(spec)["eps"] == pytest.approx(16 / 255)
    assert resolve_params(spec, norm="l2")["eps"] == 0.5
    assert resolve_params(spec, norm="L2", eps=1.0)["eps"] == 1.0
    assert name_suffix(spec, resolve_params(spec, queries=100)) == "square-eps16-q100"
