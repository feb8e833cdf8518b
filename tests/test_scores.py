"""The papers' other scores: Boundary score, Gaussian noise, patch shuffle, keep trade-off."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_matrix import copy_models, fgsm_set, save_untrained, source_entry, write_set

import robench
import robench.attacks
from robench import store
from robench.datasets import load_dataset
from robench.errors import RobenchError
from robench.scoring import (
    boundary_score,
    boundary_scores,
    boundary_values,
    matrix,
    noise_curve,
    patch_shuffle,
    shuffle_curve,
    tradeoff,
)


@pytest.fixture(scope="module")
def probe_ws(trained_ws, tmp_path_factory) -> str:
    ws = copy_models(trained_ws, tmp_path_factory.mktemp("probes"))
    fgsm_set(ws, "tiny", "fgsm-tiny", eps=0.1)
    return ws


def accuracy(model, images, labels) -> float:
    with torch.no_grad():
        return float((model(images).argmax(1) == labels).double().mean())


# ---------------------------------------------------------------- Boundary score


def test_boundary_formula_on_a_known_perturbation():
    clean = torch.zeros(4, 1, 4, 4)
    c = torch.tensor([0.1, 0.2, 0.3, 0.4])
    adv = clean + c.view(4, 1, 1, 1)  # every pixel moved by c: ||delta||^2 = 16 c^2, over 16 pixels = c^2
    assert torch.allclose(boundary_values(adv, clean), c.double() ** 2)
    l2 = (adv - clean).flatten(1).norm(dim=1)
    assert boundary_score(l2, 16) == pytest.approx((0.2**2 + 0.3**2) / 2)  # median of an even count
    assert boundary_score(l2[:3], 16) == pytest.approx(0.2**2)
    assert math.isnan(boundary_score(torch.empty(0), 16))


def test_boundary_score_from_a_stored_boundary_set(probe_ws):
    record = store.read_model("tiny", probe_ws)
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(5, 1, 32, 32, generator=g)
    delta = 0.01 * torch.arange(1, 6).view(5, 1, 1, 1) * torch.randn(clean.shape, generator=g)
    tensors = {"adv": clean + delta, "clean": clean, "labels": torch.zeros(5, dtype=torch.long),
               "source_pred": torch.ones(5, dtype=torch.long), "indices": torch.arange(5)}
    write_set(probe_ws, "boundary-tiny", tensors, [source_entry(record)], method="boundary", params={"steps": 10})
    df = boundary_scores("tiny", probe_ws, mode="sets", device="cpu")
    expected = sorted(float((delta[i] ** 2).sum()) / 1024 for i in range(5))[2]
    assert df.loc[0, "score"] == pytest.approx(expected, rel=1e-5)
    assert df.loc[0, "n"] == 5 and df.loc[0, "from"] == "set boundary-tiny"
    with pytest.raises(RobenchError, match="no boundary set made against model 'tiny-keep0.3-bottom'"):
        boundary_scores("tiny-keep*", probe_ws, mode="sets", device="cpu")


def test_boundary_score_by_attack_uses_perturb(probe_ws, monkeypatch):
    seen = {}

    def fake_perturb(model, images, labels, method, backend=None, *, seed=None, precision="fp32", **params):
        seen.update(images=images.clone(), labels=labels.clone(), method=method, params=params, seed=seed,
                    precision=precision)
        adv = 1.0 - images  # inverted digits: mostly misclassified
        l2 = (adv - images).flatten(1).norm(dim=1)
        return robench.attacks.AttackOutput(adv, {"l2_trace": l2[:, None]})

    monkeypatch.setattr(robench.attacks.generate, "perturb_output", fake_perturb)
    df = boundary_scores("tiny", probe_ws, mode="attack", n=20, params={"steps": 3}, device="cpu")
    assert seen["method"] == "boundary" and seen["params"] == {"steps": 3} and seen["seed"] == 0
    assert len(seen["images"]) == 20 and seen["precision"] == "fp32"
    model = robench.load_model("tiny", probe_ws)
    adv = 1.0 - seen["images"]
    with torch.no_grad():
        assert (model(seen["images"]).argmax(1) == seen["labels"]).all()  # attacked images are correct ones
        fooled = model(adv).argmax(1) != seen["labels"]
    values = ((adv - seen["images"])[fooled] ** 2).flatten(1).sum(1) / 1024
    assert df.loc[0, "n"] == int(fooled.sum()) and df.loc[0, "from"] == "attack"
    assert df.loc[0, "score"] == pytest.approx(float(np.median(values.numpy())))
    # one checkpoint (3 steps) cannot show convergence: flagged, and the trace holds the same median
    assert df.loc[0, "converged"] == False and df.loc[0, "steps"] == 3  # noqa: E712
    assert df.attrs["trace"]["median"].tolist() == pytest.approx([df.loc[0, "score"]])


def test_boundary_score_with_the_real_attack(probe_ws):
    df = boundary_scores("tiny", probe_ws, mode="attack", n=4, params={"steps": 20}, device="cpu")
    assert 0 < df.loc[0, "n"] <= 4 and df.loc[0, "score"] > 0


# ---------------------------------------------------------------- patch shuffle


def patches(x: torch.Tensor, k: int) -> torch.Tensor:
    """(N, k*k, C*ph*pw): the k x k grid of patches of each image, by plain slicing."""
    n, c, h, w = x.shape
    ph, pw = h // k, w // k
    return torch.stack([x[:, :, i * ph:(i + 1) * ph, j * pw:(j + 1) * pw].reshape(n, -1)
                        for i in range(k) for j in range(k)], 1)


@pytest.mark.parametrize("k", [2, 4, 8])
def test_patch_shuffle_permutes_whole_patches(k):
    x = torch.rand(6, 3, 32, 32)
    y = patch_shuffle(x, k, torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    px, py = patches(x, k), patches(y, k)
    for i in range(len(x)):
        # every output patch is an input patch, each used once (patches are distinct random noise)
        match = (py[i][:, None, :] == px[i][None, :, :]).all(-1)
        assert (match.sum(1) == 1).all() and (match.sum(0) == 1).all()
        assert torch.equal(x[i].flatten().sort().values, y[i].flatten().sort().values)
    assert not torch.equal(x, y)


def test_patch_shuffle_k1_is_identity_and_bad_k_is_an_error():
    x = torch.rand(3, 1, 32, 32)
    assert torch.equal(patch_shuffle(x, 1), x)
    with pytest.raises(RobenchError, match="k=5"):
        patch_shuffle(x, 5)


def test_shuffle_curve_on_common_correct_samples(probe_ws):
    df = shuffle_curve("*", probe_ws, ks=(1, 4), device="cpu")
    assert set(df.model) == {"tiny", "tiny-keep0.3-bottom"}
    assert list(df.columns) == ["model", "k", "accuracy", "n", "precision", "ci_low", "ci_high"]
    assert (df[df.k == 1].accuracy == 1.0).all()
    from robench.stats import proportion_ci

    for row in df.itertuples():  # the accuracy's Wilson interval, from the counts
        assert (row.ci_low, row.ci_high) == pytest.approx(proportion_ci(round(row.accuracy * row.n), row.n))
    data = load_dataset("digits")
    shuffled_acc = {}
    for name in ("tiny", "tiny-keep0.3-bottom"):
        model = robench.load_model(name, probe_ws)
        with torch.no_grad():
            ok = model(data.test.floats()).argmax(1) == data.test.labels
        shuffled_acc[name] = ok
    common = (shuffled_acc["tiny"] & shuffled_acc["tiny-keep0.3-bottom"]).nonzero().flatten()
    assert (df.n == len(common)).all()
    x = patch_shuffle(data.test.floats(common), 4, torch.Generator().manual_seed(0))
    model = robench.load_model("tiny", probe_ws)
    assert df[(df.k == 4) & (df.model == "tiny")].accuracy.iloc[0] == pytest.approx(
        accuracy(model, x, data.test.labels[common]), abs=1e-12)


# ---------------------------------------------------------------- Gaussian noise


def test_noise_at_sigma_zero_equals_clean_accuracy(probe_ws):
    df = noise_curve("*", probe_ws, sigmas=[0.0, 0.1], common=False, device="cpu")
    clean = matrix(probe_ws, device="cpu").groupby("target").target_clean_accuracy.first()
    data = load_dataset("digits")
    for name in ("tiny", "tiny-keep0.3-bottom"):
        at0 = df[(df.model == name) & (df.sigma == 0)].accuracy.iloc[0]
        assert at0 == pytest.approx(clean[name], abs=1e-12)
        assert at0 == pytest.approx(accuracy(robench.load_model(name, probe_ws), data.test.floats(),
                                             data.test.labels), abs=1e-12)
    assert (df.n == len(data.test)).all()


def test_noise_curve_common_samples_and_seeded_noise(probe_ws):
    df = noise_curve("*", probe_ws, sigmas=None, n=50, seed=3, device="cpu")
    assert sorted(df.sigma.unique()) == [0.0, 0.04, 0.06, 0.08, 0.09, 0.1]
    assert (df[df.sigma == 0].accuracy == 1.0).all() and (df.n == 50).all()
    again = noise_curve("*", probe_ws, sigmas=None, n=50, seed=3, device="cpu")
    assert df.equals(again)
    with pytest.raises(RobenchError, match="sigma must be >= 0"):
        noise_curve("tiny", probe_ws, sigmas=[-1.0], device="cpu")


# ---------------------------------------------------------------- keep trade-off


def test_tradeoff_against_keep(probe_ws):
    df = tradeoff("fgsm-tiny", "*", probe_ws, device="cpu")
    assert list(df.model) == ["tiny", "tiny-keep0.3-bottom"] and list(df.keep) == [1.0, 0.3]
    cells = matrix(probe_ws, sets="fgsm-tiny", device="cpu").set_index("target")
    for row in df.itertuples():
        assert row.defense_rate == cells.loc[row.model, "defense_rate"]
        assert row.clean_accuracy == cells.loc[row.model, "target_clean_accuracy"]


def test_tradeoff_needs_one_family(probe_ws, tmp_path):
    ws = copy_models(probe_ws, tmp_path)
    save_untrained(ws, "tiny-w8", width=8)
    with pytest.raises(RobenchError, match=r"differ in more than keep \(width: 16 vs 8\)"):
        tradeoff("fgsm-tiny", "*", ws, device="cpu")


# ---------------------------------------------------------------- AutoAttack (white-box reference)


def test_autoattack_robust_accuracy_as_robustbench_reports_it(probe_ws):
    """Reduced AutoAttack (2 iterations, 30 Square queries) on the first 40 test images: clean accuracy recomputed
    independently, robust <= clean, and a zero budget leaves exactly the clean-correct images robust."""
    from robench.scoring import autoattack_scores

    small = {"steps": 2, "queries": 30}
    df = autoattack_scores("tiny", probe_ws, n=40, batch_size=16, **small)
    data = load_dataset("digits")
    model = robench.load_model("tiny", probe_ws)
    row = df.iloc[0]
    assert list(df.model) == ["tiny"] and row.n == 40 and row.eps == 8 / 255 and row.norm == "linf"
    assert row.attacks == "apgd-ce,apgd-t,fab-t,square" and row.steps == 2 and row.queries == 30
    assert row.clean_accuracy == accuracy(model, data.test.floats(slice(0, 40)), data.test.labels[:40])
    assert 0 <= row.robust_accuracy < row.clean_accuracy  # the white-box attack fools a standard tiny CNN
    zero = autoattack_scores("tiny", probe_ws, n=40, eps=0.0, attacks="apgd-ce", **small).iloc[0]
    assert zero.robust_accuracy == zero.clean_accuracy == row.clean_accuracy
    with pytest.raises(RobenchError, match="does not support --norm l1"):
        autoattack_scores("tiny", probe_ws, n=8, norm="l1")
