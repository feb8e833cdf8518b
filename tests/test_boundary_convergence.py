"""The Boundary score's convergence trace: recorded in one unchanged run, non-increasing, stored with sets, and a
short run flagged as not converged."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from test_matrix import copy_models

import robench
from robench.attacks.convergence import Trace, checkpoints, trace
from robench.attacks.generate import perturb_output, seeded
from robench.datasets import load_dataset
from robench.scoring import boundary_scores

SHORT = {"steps": 200, "init_directions": 50}  # checkpoints 100 and 200: too few to show convergence


@pytest.fixture(scope="module")
def batch(trained_ws):
    model = robench.load_model(str(Path(trained_ws) / "models" / "tiny")).eval()
    digits = load_dataset("digits")
    x, y = digits.test.floats(slice(0, 32)), digits.test.labels[:32]
    with torch.no_grad():
        right = (model(x).argmax(1) == y).nonzero().flatten()[:8]
    return model, x[right], y[right]


def test_checkpoints_and_trace_arithmetic():
    assert checkpoints(25000) == [195, 390, 781, 1562, 3125, 6250, 12500, 25000]
    assert checkpoints(1000) == [125, 250, 500, 1000] and checkpoints(50) == [50]
    l2 = torch.tensor([[2.0, 1.0], [4.0, 2.0], [float("nan"), float("nan")]])
    tr = trace(l2, [100, 200], pixels=4, tolerance=0.05)
    assert tr.n == 2 and tr.median == [(1 + 4) / 2, (0.25 + 1) / 2]
    assert tr.change == pytest.approx((2.5 - 0.625) / 0.625) and not tr.converged
    assert not Trace.from_json(tr.to_json(), tolerance=10.0).converged  # two checkpoints cannot show it
    settled = Trace([2500, 5000, 10000, 20000], [8.0, 4.0, 2.0, 1.96], 5, 0.05)
    assert settled.converged and settled.change == pytest.approx(0.04 / 1.96) and settled.reason == ""
    assert not Trace([2500, 5000, 10000, 20000], [8.0, 4.0, 2.0, 1.5], 5, 0.05).converged  # moved 33%
    assert not Trace([2500, 5000, 10000, 20000], [2.0, 1.99, 1.98, 1.97], 5, 0.05).converged  # not slowing down
    # the slow start: ResNet-18 medians at 195 ... 1562 steps moved < 1.2% per doubling, then fell 79%
    slow_start = Trace([195, 390, 781, 1562], [4.685e-3, 4.654e-3, 4.633e-3, 4.578e-3], 16, 0.05)
    assert slow_start.change < 0.05 and not slow_start.converged and "slow start" in slow_start.reason


def test_trace_comes_from_one_unchanged_run(batch):
    import foolbox as fb

    model, x, y = batch
    out = perturb_output(model, x, y, "boundary", seed=0, steps=200, init_directions=50)
    l2 = out.extra["l2_trace"]
    assert l2.shape == (len(x), 2)  # steps 100, 200
    ok = ~l2.isnan().any(1)
    assert ok.sum() >= len(x) - 1
    # each example's distance only shrinks (up to float32 rounding: Foolbox logs its norms with eagerpy, the last
    # column is computed from the returned images with torch)
    assert (l2[ok].diff(dim=1) <= 1e-6 * l2[ok, 1:]).all()
    assert torch.allclose(l2[ok, -1], (out.adv - x)[ok].flatten(1).norm(dim=1), rtol=1e-4)
    # Foolbox's own attack, called directly with the same seed, gives the same images: tracing changes nothing
    with seeded(0):
        fmodel = fb.PyTorchModel(model, bounds=(0, 1))
        starts = fb.attacks.LinearSearchBlendedUniformNoiseAttack(directions=50, steps=50).run(
            fmodel, x, fb.criteria.Misclassification(y))
        direct = fb.attacks.BoundaryAttack(steps=200).run(fmodel, x[ok], fb.criteria.Misclassification(y[ok]),
                                                          starting_points=starts[ok])
    assert torch.equal(direct, out.adv[ok])


def test_short_run_flagged_not_converged(trained_ws, tmp_path, caplog):
    ws = copy_models(trained_ws, tmp_path)
    with caplog.at_level(logging.WARNING, logger="robench.scoring.probes"):
        df = boundary_scores("tiny", ws, mode="attack", n=8, params={"steps": 400, "init_directions": 50},
                             device="cpu")
    row = df.iloc[0]
    assert row["steps"] == 400 and row["converged"] == False  # noqa: E712
    medians = df.attrs["trace"]["median"].tolist()
    assert df.attrs["trace"]["steps"].tolist() == [100, 200, 400]
    assert medians[0] >= medians[1] * (1 - 1e-6) and medians[1] >= medians[2] * (1 - 1e-6)  # float32 rounding
    assert medians[-1] == pytest.approx(row["score"])
    assert "has not converged" in caplog.text


def test_boundary_set_records_the_trace(trained_ws, tmp_path):
    ws = copy_models(trained_ws, tmp_path)
    rec = robench.attack("tiny", "boundary", n=12, workspace=ws, **SHORT)
    s = robench.load_set(rec.name, ws)
    assert len(s) > 0 and rec.params["tolerance"] == 0.05
    # the stored per-example L2 norms are the norms of the stored images, and the trace's last column
    recomputed = (s.adv.double() - s.clean.double()).flatten(1).norm(dim=1)
    assert torch.allclose(s.l2.double(), recomputed, rtol=1e-5)
    assert torch.allclose(s.extra["l2_trace"][:, -1].double(), recomputed, rtol=1e-4)
    stats = rec.stats.trace
    assert stats.steps == [100, 200] and stats.n == len(s) and stats.converged is False
    per_pixel = s.extra["l2_trace"].double().pow(2).numpy() / 1024
    assert stats.median == pytest.approx(np.median(per_pixel, axis=0).tolist())
    assert stats.median[0] >= stats.median[1] * (1 - 1e-6)  # non-increasing in steps (float32 rounding)
    assert s.extra["steps_used"].tolist() == [200] * len(s) and not s.extra["converged"].any()
    assert rec.stats.steps_used.to_json() == {"over": "kept examples", "n": len(s), "cap": 200, "early_stop": True,
                                       "converged": 0, "median": 200.0, "mean": 200.0, "max": 200}
    df = boundary_scores("tiny", ws, mode="sets", device="cpu")
    assert df.loc[0, "converged"] == False and df.loc[0, "score"] == pytest.approx(stats.median[-1])  # noqa: E712
    loose = boundary_scores("tiny", ws, mode="sets", device="cpu", params={"tolerance": 1e6})
    assert loose.loc[0, "converged"] == False and "slow start" in loose.loc[0, "reason"]  # noqa: E712


def _linear_model() -> torch.nn.Module:
    """Two classes split by a hyperplane through the centre of [0, 1]^16: Boundary converges in a few thousand
    steps, to the exact distance of each input from the plane."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2)).eval()
    with torch.no_grad():
        model[1].bias.copy_(-(model[1].weight @ torch.full((16,), 0.5)))
    return model


@pytest.mark.slow
def test_boundary_early_stop_converges_before_the_cap():
    model = _linear_model()
    x = torch.rand(8, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = model(x).argmax(1)
    cap, tolerance = 12800, 0.05
    settings = {"steps": cap, "init_directions": 50, "settle": 100, "tolerance": tolerance}
    stopped = perturb_output(model, x, y, "boundary", seed=0, **settings)
    full = perturb_output(model, x, y, "boundary", seed=0, early_stop=False, **settings)
    used, converged = stopped.extra["steps_used"], stopped.extra["converged"]
    assert converged.all() and (used < cap).all() and used.max() < full.extra["steps_used"].max()
    assert set(used.tolist()) <= {c + 1 for c in checkpoints(cap)}  # each example stops right after a checkpoint
    score = [float(np.median(((o.adv - x).flatten(1).norm(dim=1) ** 2 / 16).numpy())) for o in (stopped, full)]
    assert abs(score[0] - score[1]) <= tolerance * score[1]
    # both runs reach the exact distance to the plane
    w, b = model[1].weight.detach(), model[1].bias.detach()
    exact = ((x.flatten(1) @ (w[0] - w[1]) + b[0] - b[1]).abs() / (w[0] - w[1]).norm())
    assert torch.allclose((stopped.adv - x).flatten(1).norm(dim=1), exact, rtol=tolerance)
    # the set's summary of the steps used
    from robench.attacks.registry import _boundary_stats, method_spec, resolve_params

    params = resolve_params(method_spec("boundary"), **settings)
    stats = _boundary_stats(stopped.extra, params, (1, 4, 4))
    assert stats["steps_used"]["converged"] == 8 and stats["steps_used"]["max"] == int(used.max())
    assert stats["trace"]["settled"] == 100 and stats["trace"]["converged"]
