"""The attack layer: every method x backend pair, set contents, ensembles, seeding, metadata."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import robench
from robench.attacks import list_methods, method_spec, parse_number, perturb, register_method
from robench.data import load_dataset
from robench.errors import RobenchError

# small settings per method so the whole file runs in seconds; methods not listed use their defaults
SMALL = {"pgd": {"steps": 5}, "mifgsm": {"steps": 5}, "cw": {"steps": 10, "binary_search_steps": 1},
         "boundary": {"steps": 20, "init_directions": 20}, "square": {"queries": 50},
         "hopskipjump": {"queries": 200, "init_directions": 10, "eps": 5.0}}
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
    assert all(x.weights_sha256 and x.arch == "tiny" and "keep" in x.config for x in rec.sources)
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


@pytest.mark.parametrize("method,params", [("pgd", {"random_start": True, "steps": 3}), ("noise", {"sigma": 0.3})])
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
    assert on_disk["schema"] == 1 and on_disk["kind"] == "set" and "path" not in on_disk
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
    ({"steps": 0}, "--steps must be in"),
    ({"n": 0}, "--n must be a positive"),
    ({"sources": "nosuch"}, "no model 'nosuch'"),
])
def test_bad_input(trained_ws, ws, kwargs, message):
    kwargs = {"sources": src(trained_ws), **kwargs}
    with pytest.raises(RobenchError) as info:
        robench.attack(kwargs.pop("sources"), kwargs.pop("method", "pgd"), workspace=ws, **kwargs)
    assert message in str(info.value)
    assert not (Path(ws) / "sets").exists()


def test_registry():
    assert set(list_methods()) >= {"fgsm", "pgd", "mifgsm", "cw", "boundary", "noise"}
    with pytest.raises(ValueError, match="already registered"):
        register_method(method_spec("pgd"))
    assert parse_number("16/255") == pytest.approx(0.0627, abs=1e-4) and parse_number("0.0627") == 0.0627
