"""The attack layer: every method x backend pair, set contents, ensembles, seeding, metadata."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import robench
from robench.attacks import list_methods, method_spec, parse_number, perturb, register_method
from robench.attacks.generate import pick_targets
from robench.datasets import load_dataset
from robench.errors import RobenchError

# small settings per method so the whole file runs in seconds; methods not listed use their defaults
SMALL = {"pgd": {"steps": 5}, "mifgsm": {"steps": 5}, "cw": {"steps": 10, "binary_search_steps": 1},
         "boundary": {"steps": 20, "init_directions": 20}, "difgsm": {"steps": 5}, "tifgsm": {"steps": 5},
         "mdti": {"steps": 5}, "vmifgsm": {"steps": 3, "samples": 2}, "apgd": {"steps": 5},
         "autoattack": {"steps": 2, "queries": 20}, "square": {"queries": 50},
         "hopskipjump": {"queries": 200, "init_directions": 10, "eps": 5.0}}
# torchattacks' TI kernel is hard-wired to 3 channels: on the 1-channel digits these pairs are one-line errors
THREE_CHANNELS = {("tifgsm", "torchattacks"), ("mdti", "torchattacks")}
PAIRS = [(m, b) for m in list_methods() for b in method_spec(m).backends]


def src(trained_ws: str, name: str = "tiny") -> str:
    return str(Path(trained_ws) / "models" / name)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def plain_logits(model_dirs: list[str], images: torch.Tensor) -> torch.Tensor:
    """Mean logits of freshly loaded models, in plain torch (no robench runtime helpers)."""
    with torch.no_grad():
        return torch.stack([robench.load_model(d)(images) for d in model_dirs]).mean(0)


def check_set(s, model_dirs: list[str], digits, eps: float | None) -> None:
    assert s.adv.dtype == torch.float32 and s.clean.dtype == torch.float32
    assert s.adv.shape == s.clean.shape and s.adv.shape[1:] == (1, 32, 32)
    assert s.adv.min() >= 0 and s.adv.max() <= 1
    # the clean originals and labels are the test images they claim to be
    assert torch.equal(s.clean, digits.test.floats(s.indices))
    assert torch.equal(s.labels, digits.test.labels[s.indices])
    # every kept example fools its source, and source_pred is the source's prediction
    pred = plain_logits(model_dirs, s.adv).argmax(1)
    assert torch.equal(pred, s.source_pred)
    assert (pred != s.labels).all()
    delta = (s.adv - s.clean).flatten(1)
    assert torch.allclose(s.l2, delta.norm(dim=1), atol=1e-5)
    assert torch.allclose(s.linf, delta.abs().amax(1), atol=1e-6)
    if eps is not None:
        assert (s.linf <= eps + 1e-6).all()


@pytest.mark.parametrize("method,backend", PAIRS, ids=[f"{m}-{b}" for m, b in PAIRS])
def test_every_method_and_backend(trained_ws, ws, digits, method, backend):
    model = src(trained_ws)
    if (method, backend) in THREE_CHANNELS:
        with pytest.raises(RobenchError, match="torchattacks's .* takes 3-channel images only.*--backend robench"):
            robench.attack(model, method, backend=backend, n=8, workspace=ws, **SMALL.get(method, {}))
        return
    rec = robench.attack(model, method, backend=backend, n=32, workspace=ws, **SMALL.get(method, {}))
    assert rec.method == method and rec.backend == backend and rec.backend_version and rec.versions["torch"]
    assert rec.attempted == 32 and rec.success_rate == rec.n / 32 and len(rec.shards) >= (rec.n > 0)
    assert rec.dataset.name == "digits" and rec.dataset.fingerprint and rec.wall_time_s > 0 and rec.created
    s = robench.load_set(rec.name, ws)
    assert s.record == rec
    eps = rec.params.get("eps") if method_spec(method).norm == "linf" else None
    check_set(s, [model], digits, eps)
    if method not in ("noise",):
        assert len(s) > 0, f"{method}/{backend} fooled nothing"


def test_pgd_defaults_and_not_quantised(trained_ws, ws, digits):
    rec = robench.attack(src(trained_ws), "pgd", n=40, workspace=ws)
    assert rec.name == "tiny-pgd-eps16-n40"
    assert rec.params == {"eps": 16 / 255, "step": 1 / 255, "steps": 20, "random_start": False,
                          "norm": "linf", "targeted": False}
    assert rec.backend == method_spec("pgd").default_backend
    s = robench.load_set(rec.name, ws)
    check_set(s, [src(trained_ws)], digits, 16 / 255)
    scaled = s.adv * 255
    assert (scaled - scaled.round()).abs().max() > 1e-3  # not rounded to 8-bit levels


def test_ensemble_source_averages_logits(trained_ws, ws, digits):
    dirs = [src(trained_ws), src(trained_ws, "tiny-keep0.3-bottom")]
    rec = robench.attack(dirs, "fgsm", eps="8/255", n=32, workspace=ws)
    assert rec.name == "tiny+tiny-keep0.3-bottom-fgsm-eps8-n32"
    assert rec.source_names == ["tiny", "tiny-keep0.3-bottom"]
    assert all(x.weights_sha256 and x.arch == "tiny" and "keep" in x.config.flat() for x in rec.sources)
    s = robench.load_set(rec.name, ws)
    check_set(s, dirs, digits, 8 / 255)  # predictions recomputed from the mean of the members' logits
    # the clean images were all classified correctly by the averaged logits
    clean_pred = plain_logits(dirs, digits.test.floats()).argmax(1)
    assert (clean_pred[s.indices] == s.labels).all()


def test_first_n_correct_in_order(trained_ws, ws, digits):
    rec = robench.attack(src(trained_ws), "fgsm", eps=1.0, n=20, workspace=ws)  # eps 1 fools nearly all
    s = robench.load_set(rec.name, ws)
    pred = plain_logits([src(trained_ws)], digits.test.floats()).argmax(1)
    first = (pred == digits.test.labels).nonzero().flatten()[:20]
    assert set(s.indices.tolist()) <= set(first.tolist())
    assert s.indices.tolist() == sorted(s.indices.tolist())


@pytest.mark.parametrize("method,params", [("pgd", {"random_start": True, "steps": 3}), ("noise", {"sigma": 0.3}),
                                           ("difgsm", {"steps": 3, "eps": "4/255"}),
                                           ("vmifgsm", {"steps": 2, "samples": 2, "eps": "4/255"})])
def test_same_seed_same_set(trained_ws, ws, method, params):
    sets = []
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        robench.attack(src(trained_ws), method, n=32, seed=seed, name=name, workspace=ws, **params)
        sets.append(robench.load_set(name, ws))
    a, b, c = sets
    assert len(a) > 0 and torch.equal(a.adv, b.adv) and torch.equal(a.indices, b.indices)
    assert a.record.sha256 == b.record.sha256
    assert not (len(a) == len(c) and torch.equal(a.adv, c.adv))  # the seed matters


def test_metadata_round_trips(trained_ws, ws):
    rec = robench.attack(src(trained_ws), "noise", n=32, workspace=ws, seed=3)
    assert rec.name == "tiny-noise-sigma0.08-seed3-n32"
    loaded = robench.load_set(rec.name, ws).record
    assert loaded == rec and loaded.to_json() == json.loads(json.dumps(rec.to_json()))
    on_disk = json.loads((Path(ws) / "sets" / rec.name / "set.json").read_text())
    assert on_disk["schema"] == 2 and on_disk["kind"] == "set" and "path" not in on_disk
    assert loaded.params["sigma"] == 0.08 and loaded.seed == 3
    assert loaded.dataset.name == "digits" and loaded.dataset.num_classes == 10
    assert "robench" in loaded.versions and "torch" in loaded.versions
    df = robench.list_sets(ws)
    assert df["name"].tolist() == [rec.name] and df["method"][0] == "noise"


def test_existing_name_and_overwrite(trained_ws, ws):
    robench.attack(src(trained_ws), "fgsm", n=16, workspace=ws)
    with pytest.raises(RobenchError, match="already exists"):
        robench.attack(src(trained_ws), "fgsm", n=16, workspace=ws)
    rec = robench.attack(src(trained_ws), "fgsm", n=16, workspace=ws, overwrite=True)
    assert rec.attempted == 16


def test_perturb_batch(trained_ws, digits):
    model = robench.load_model(src(trained_ws))
    flags = [p.requires_grad for p in model.parameters()]
    x, y = digits.test.floats(slice(0, 16)), digits.test.labels[:16]
    adv = perturb(model, x, y, "pgd", eps="8/255", steps=3)
    assert adv.shape == x.shape and adv.dtype == torch.float32
    assert (adv - x).abs().max() <= 8 / 255 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    assert [p.requires_grad for p in model.parameters()] == flags  # the caller's model is left as it was
    adv2 = perturb(model, x, y, "boundary", steps=5, init_directions=10, seed=0)
    assert adv2.shape == x.shape and adv2.min() >= 0 and adv2.max() <= 1


def test_sources_of_different_datasets(trained_ws, ws):
    other = Path(ws) / "models" / "other"
    shutil.copytree(src(trained_ws), other)
    meta = json.loads((other / "model.json").read_text())
    meta["name"], meta["dataset"]["name"] = "other", "mnist"
    (other / "model.json").write_text(json.dumps(meta))
    with pytest.raises(RobenchError, match="different datasets"):
        robench.attack([src(trained_ws), "other"], "fgsm", n=8, workspace=ws)
    assert not (Path(ws) / "sets").exists() or not any((Path(ws) / "sets").iterdir())


@pytest.mark.parametrize("kwargs,message", [
    ({"method": "pgdd"}, "did you mean pgd"),
    ({"backend": "cleverhans"}, "unknown backend"),
    ({"method": "boundary", "backend": "art"}, "one sample at a time"),
    ({"eps": -0.1}, "must be in [0, 1]"),
    ({"eps": "2"}, "must be in [0, 1]"),
    ({"eps": "16/0"}, "fraction like 16/255"),
    ({"method": "cw", "eps": 0.1}, "takes no --eps"),
    ({"steps": 0}, "steps = 0: expected a whole number >= 1"),
    ({"n": 0}, "n = 0: expected a whole number >= 1"),
    ({"method": "mifgsm", "norm": "l2"}, "mifgsm does not support --norm l2: use --norm linf"),
    ({"norm": "l1"}, "pgd does not support --norm l1"),
    ({"target": 10}, "--target 10 is out of range: the source's dataset has classes 0 to 9"),
    ({"target": "-1"}, "--target -1 is out of range"),
    ({"target": "likely"}, "--target must be random, least-likely or a class label"),
    ({"method": "boundary", "target": "random"}, "boundary is untargeted only"),
    ({"method": "apgd", "loss": "hinge"}, "--loss of apgd must be among ce, dlr"),
    ({"method": "autoattack", "attacks": "apgd-ce,fgsm"}, "--attacks of autoattack must be among"),
    ({"method": "tifgsm", "kernel": 4}, "--kernel must be an odd size"),
    ({"norm": "l2", "eps": -1}, "an L2 norm in [0, 1] image units"),
    ({"sources": "nosuch"}, "no model 'nosuch'"),
])
def test_bad_input(trained_ws, ws, kwargs, message):
    kwargs = {"sources": src(trained_ws), **kwargs}
    with pytest.raises(RobenchError) as info:
        robench.attack(kwargs.pop("sources"), kwargs.pop("method", "pgd"), workspace=ws, **kwargs)
    assert message in str(info.value)
    assert not (Path(ws) / "sets").exists()


def test_registry():
    assert set(list_methods()) >= {"fgsm", "pgd", "mifgsm", "cw", "boundary", "noise", "difgsm", "tifgsm", "vmifgsm",
                                   "mdti", "apgd", "autoattack"}
    for m in list_methods():  # every parameter has a pixel-unit-checked default and every default backend exists
        spec = method_spec(m)
        assert spec.default_backend in spec.backends and spec.norm in spec.supported_norms
    with pytest.raises(ValueError, match="already registered"):
        register_method(method_spec("pgd"))
    assert parse_number("16/255") == pytest.approx(0.0627, abs=1e-4) and parse_number("0.0627") == 0.0627


# ---------------------------------------------------------------- L2, targets


def digits_batch(trained_ws: str, digits, n: int = 48) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """The tiny source and the first n test images it classifies correctly."""
    model = robench.load_model(src(trained_ws)).eval()
    x, y = digits.test.floats(slice(0, 4 * n)), digits.test.labels[: 4 * n]
    with torch.no_grad():
        right = (model(x).argmax(1) == y).nonzero().flatten()[:n]
    return model, x[right], y[right]


@pytest.mark.parametrize("method,backend", [(m, b) for m in ("fgsm", "pgd") for b in method_spec(m).backends]
                         + [("apgd", "torchattacks")])
def test_l2_sets_stay_in_the_l2_ball(trained_ws, ws, digits, method, backend):
    rec = robench.attack(src(trained_ws), method, backend=backend, norm="l2", eps=1.5, n=24, workspace=ws,
                         **({"steps": 5} if method != "fgsm" else {}))
    assert rec.params["norm"] == "l2" and rec.params["eps"] == 1.5 and "-l2-eps1.5" in rec.name
    s = robench.load_set(rec.name, ws)
    check_set(s, [src(trained_ws)], digits, None)
    assert len(s) > 0 and (s.l2 <= 1.5 + 1e-5).all()


@pytest.mark.parametrize("method,backend,target", [
    ("pgd", "robench", "random"), ("pgd", "foolbox", "least-likely"), ("pgd", "art", "3"),
    ("mifgsm", "robench", "least-likely"), ("difgsm", "torchattacks", "random"), ("tifgsm", "robench", "7"),
])
def test_targeted_sets_keep_target_hits(trained_ws, ws, digits, method, backend, target):
    model = src(trained_ws)
    rec = robench.attack(model, method, backend=backend, target=target, n=32, workspace=ws, eps="32/255",
                         steps=10)
    assert rec.target == target and rec.params["targeted"] is True and rec.params["target"] == target
    assert rec.name.endswith(f"-targeted-{target}-{backend}-n32" if backend != "robench"
                             else f"-targeted-{target}-n32")
    s = robench.load_set(rec.name, ws)
    assert len(s) > 0 and set(s.extra) == {"targets"}
    targets = s.extra["targets"]
    pred = plain_logits([model], s.adv).argmax(1)
    assert torch.equal(pred, targets) and torch.equal(s.source_pred, targets)  # every kept example hits its target
    assert (targets != s.labels).all() and (s.linf <= 32 / 255 + 1e-6).all()
    if target == "least-likely":
        assert torch.equal(targets, plain_logits([model], s.clean).argmin(1))
    elif target != "random":
        assert (targets == int(target)).all()
        assert rec.attempted == int((digits.test.labels[:200] != int(target)).sum()) or rec.attempted <= 32


def test_random_targets_are_seeded_and_uniform_over_the_other_classes(trained_ws, ws):
    a = robench.attack(src(trained_ws), "pgd", target="random", eps="64/255", steps=5, step="16/255", n=32, seed=5,
                       name="a", workspace=ws)
    b = robench.attack(src(trained_ws), "pgd", target="random", eps="64/255", steps=5, step="16/255", n=32, seed=5,
                       name="b", workspace=ws)
    sa, sb = robench.load_set("a", ws), robench.load_set("b", ws)
    assert len(sa) > 0 and a.sha256 == b.sha256 and torch.equal(sa.extra["targets"], sb.extra["targets"])
    labels = torch.arange(10).repeat(2000)
    targets = pick_targets("random", None, None, labels, 10, torch.Generator().manual_seed(0))
    assert (targets != labels).all()
    for c in range(10):  # given its label, each of the 9 other classes is drawn 1/9 of the time
        counts = torch.bincount(targets[labels == c], minlength=10).float() / 2000
        assert counts[c] == 0
        assert ((counts[torch.arange(10) != c] - 1 / 9).abs() < 0.03).all()


# ---------------------------------------------------------------- the native backend against the libraries


def test_native_fgsm_and_pgd_match_foolbox_and_art(trained_ws, digits):
    model, x, y = digits_batch(trained_ws, digits)
    for method, params in (("fgsm", {"eps": "8/255"}), ("fgsm", {"eps": 1.0, "norm": "l2"}),
                           ("pgd", {"steps": 10}), ("mifgsm", {"steps": 10})):
        native = perturb(model, x, y, method, backend="robench", **params)
        for backend in ("foolbox", "art"):
            if method == "mifgsm" and backend == "foolbox":
                continue  # Foolbox accumulates sign(gradient), not Dong et al.'s L1-normalised gradient
            other = perturb(model, x, y, method, backend=backend, **params)
            differ = (native - other).abs() > 1e-6
            if method == "fgsm" and params.get("norm") != "l2":
                assert torch.equal(native, other), backend  # FGSM: the same images, bit for bit
            else:  # the libraries' own CE can flip the sign of a near-zero gradient, which then carries on
                assert differ.float().mean() < 0.02, (method, backend)


def _hand_written_ti(model, x, y, eps, step, steps, size, nsig):
    """TI-FGSM (Dong et al. 2019) from the paper, independently of robench: Gaussian-smoothed signed steps."""
    import numpy as np
    from scipy.stats import norm

    k1 = norm.pdf(np.linspace(-nsig, nsig, size))
    k2 = np.outer(k1, k1)
    kernel = torch.tensor(k2 / k2.sum(), dtype=torch.float32).expand(x.shape[1], 1, size, size)
    adv = x.clone()
    for _ in range(steps):
        adv.requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(model(adv), y)
        (g,) = torch.autograd.grad(loss, adv)
        g = torch.nn.functional.conv2d(g, kernel, padding=size // 2, groups=x.shape[1])
        adv = (x + (adv.detach() + step * g.sign() - x).clamp(-eps, eps)).clamp(0, 1)
    return adv


def test_tifgsm_matches_a_hand_written_reference_and_torchattacks(trained_ws, digits):
    model, x, y = digits_batch(trained_ws, digits)
    ours = perturb(model, x, y, "tifgsm", steps=6, kernel=5)
    ref = _hand_written_ti(model, x, y, 16 / 255, 1 / 255, 6, 5, 3.0)
    assert ((ours - ref).abs() > 1e-6).float().mean() < 0.01
    # torchattacks' TI-FGSM (3 channels only) against ours on an RGB model: the same images
    torch.manual_seed(0)
    rgb = robench.create_model("tiny", in_channels=3, width=4).eval()
    xr, yr = torch.rand(16, 3, 32, 32), torch.randint(0, 10, (16,))
    a = perturb(rgb, xr, yr, "tifgsm", backend="robench", steps=5, decay=1.0)
    b = perturb(rgb, xr, yr, "tifgsm", backend="torchattacks", steps=5, decay=1.0)
    assert ((a - b).abs() > 1e-6).float().mean() < 0.01


def _fooled(model, x, y, adv) -> float:
    with torch.no_grad():
        return float((model(adv).argmax(1) != y).float().mean())


@pytest.mark.parametrize("method,params,tolerance", [
    ("difgsm", {"steps": 5, "eps": "4/255"}, 0.15), ("vmifgsm", {"steps": 3, "samples": 4, "eps": "4/255"}, 0.15),
    ("apgd", {"steps": 10, "eps": "4/255"}, 0.15), ("apgd", {"steps": 10, "eps": "4/255", "loss": "dlr"}, 0.15),
])
def test_two_backends_agree_on_success_rate(trained_ws, digits, method, params, tolerance):
    """Where two libraries implement a method, their success rates on the same model and images differ by at most
    ``tolerance`` (their random draws differ, so the images do not match one for one)."""
    model, x, y = digits_batch(trained_ws, digits)
    rates = [_fooled(model, x, y, perturb(model, x, y, method, backend=b, seed=0, **params))
             for b in method_spec(method).backends]
    assert 0 < max(rates) and max(rates) - min(rates) <= tolerance, rates


def test_torchattacks_nan_on_zero_gradient_becomes_the_clean_image():
    """A model whose gradient is exactly zero: torchattacks' mean-abs normalisation divides by zero (NaN)."""
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10))
    torch.nn.init.zeros_(model[1].weight)
    x, y = torch.rand(4, 3, 32, 32), torch.zeros(4, dtype=torch.long)
    for backend in ("robench", "torchattacks"):
        adv = perturb(model, x, y, "difgsm", backend=backend, steps=2)
        assert torch.isfinite(adv).all() and torch.equal(adv, x)
