"""The one attack contract: every registered method x backend is an ``Attack`` and gives the images (and extras) it
gave before the contract (recorded in tests/data/attack-outputs.json); a backend written as one file, as the
attacks guide shows it, runs through ``perturb`` and set generation; registration errors are clear."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import inspect
import json
import re
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import robench
from robench.attacks import Attack, AttackOutput, Extras, list_methods, method_spec, perturb, perturb_output, registry
from robench.attacks.registry import MethodSpec, register_attack, register_backend, register_method
from robench.errors import RobenchError

sys.path.insert(0, str(Path(__file__).parent))
import attack_golden  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = json.loads(attack_golden.GOLDEN.read_text())
CASES = attack_golden.cases()
PAIRS = [(m, b) for m in list_methods() for b in method_spec(m).backends]


@contextlib.contextmanager
def one_thread():
    """One CPU thread (as recorded) for the block only: a session fixture made meanwhile (``trained_ws``) must not
    be trained on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def golden_setup():
    """The tiny seeded model and the attacked digits; skips where this platform's floating point gives other clean
    logits or input gradients than the recording's (the exact bytes cannot be compared there)."""
    with one_thread():
        model = attack_golden.tiny_model()
        x, y = attack_golden.digits()
        images, labels = x[: attack_golden.N], y[: attack_golden.N]
        if attack_golden.platform(model, images, labels) != GOLDEN["platform"]:
            pytest.skip("this platform's floating point gives other clean logits or gradients than the recording's: "
                        "exact attack outputs cannot be compared here")
    return model, images, labels


def test_the_recording_covers_every_registered_case():
    assert sorted(GOLDEN["cases"]) == sorted(cid for cid, *_ in CASES), \
        "a method or backend was added or removed: record again with `python tests/attack_golden.py --write`"
    assert {f"{m}-{b}" for m, b in PAIRS} <= set(GOLDEN["cases"])


@pytest.mark.parametrize("cid,method,backend,kwargs", CASES, ids=[c[0] for c in CASES])
def test_every_attack_gives_its_recorded_output(golden_setup, cid, method, backend, kwargs):
    model, images, labels = golden_setup
    with one_thread():
        assert attack_golden.fingerprint(model, images, labels, method, backend, kwargs) == GOLDEN["cases"][cid]


@pytest.mark.parametrize("method,backend", PAIRS, ids=[f"{m}-{b}" for m, b in PAIRS])
def test_every_registered_attack_keeps_the_contract(method, backend):
    attack = method_spec(method).attack(backend)
    assert isinstance(attack, Attack)
    assert list(inspect.signature(attack.run).parameters)[:3] == ["model", "images", "labels"]


# ---------------------------------------------------------------- a backend in one file


@pytest.fixture
def clean_registry(monkeypatch):
    """Backends and methods registered in a test are gone after it."""
    monkeypatch.setattr(registry, "BACKENDS", dict(registry.BACKENDS))
    methods = {name: spec for name, spec in registry._METHODS.items()}
    monkeypatch.setattr(registry, "_METHODS", methods)
    fgsm = methods["fgsm"]
    monkeypatch.setitem(methods, "fgsm", dataclasses.replace(fgsm, attacks=dict(fgsm.attacks)))
    return registry


def guide_backend() -> str:
    """The first Python block of the attacks guide's "Writing an attack backend" section."""
    text = (ROOT / "docs" / "guides" / "attacks.md").read_text()
    section = text.split("## Writing an attack backend", 1)[1]
    return re.findall(r"```python\n(.*?)```", section, re.S)[0]


@pytest.fixture
def mybackend(clean_registry, tmp_path, monkeypatch):
    (tmp_path / "mybackend.py").write_text(guide_backend())
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "mybackend", raising=False)
    module = importlib.import_module("mybackend")
    yield module
    sys.modules.pop("mybackend", None)


def test_the_guides_backend_runs_through_perturb(mybackend):
    assert "mybackend" in registry.list_backends() and "random-sign" in list_methods()
    x, y = attack_golden.digits()
    model = attack_golden.tiny_model()
    out = perturb_output(model, x[:16], y[:16], "random-sign", eps="8/255", seed=3)
    moved = (out.adv - x[:16]).abs()
    inside = (x[:16] > 8 / 255 + 1e-6) & (x[:16] < 1 - 8 / 255 - 1e-6)  # pixels the clipping cannot touch
    assert torch.allclose(moved[inside], torch.tensor(8 / 255), atol=1e-6)
    assert out.extra.queries.tolist() == [1] * 16 and list(out.extra) == ["queries"]
    # the run's seed, through the global RNG: the same seed gives the same images, another seed others
    assert torch.equal(perturb(model, x[:16], y[:16], "random-sign", eps="8/255", seed=3), out.adv)
    assert not torch.equal(perturb(model, x[:16], y[:16], "random-sign", eps="8/255", seed=4), out.adv)


def test_the_guides_backend_makes_a_set(mybackend, trained_ws, ws):
    model = str(Path(trained_ws) / "models" / "tiny")
    rec = robench.attack(model, "random-sign", eps=0.5, n=20, workspace=ws)
    assert rec.name == "tiny-random-sign-eps127.5-n20" and rec.backend == "mybackend"
    assert rec.backend_version == "0.1" and rec.versions["mybackend"] == "0.1"
    s = robench.load_set(rec.name, ws)
    assert len(s) == rec.n > 0 and (s.extra["queries"] == 1).all()
    assert ((s.adv - s.clean).abs().amax((1, 2, 3)) <= 0.5 + 1e-6).all()
    with torch.no_grad():
        assert (robench.load_model(model)(s.adv).argmax(1) != s.labels).all()


class HandFGSM:
    """FGSM written from the paper in a few lines, as a second backend of the registered ``fgsm``."""

    def run(self, model, images, labels, params):
        x = images.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(x), labels, reduction="sum"), x)
        return AttackOutput((images + params["eps"] * grad.sign()).clamp(0, 1))


def test_a_backend_added_to_a_registered_method(mybackend):
    register_attack("fgsm", "mybackend", HandFGSM())
    assert "mybackend" in method_spec("fgsm").backends
    x, y = attack_golden.digits()
    model = attack_golden.tiny_model()
    mine = perturb(model, x[:32], y[:32], "fgsm", backend="mybackend", eps="8/255")
    native = perturb(model, x[:32], y[:32], "fgsm", backend="robench", eps="8/255")
    assert torch.equal(mine, native)
    with pytest.raises(ValueError, match="already runs 'fgsm'"):
        register_attack("fgsm", "mybackend", HandFGSM())


def test_registration_errors(clean_registry):
    with pytest.raises(ValueError, match="backend 'foolbox' is already registered"):
        register_backend("foolbox", "robench.attacks.foolbox_backend")
    with pytest.raises(RobenchError, match="unknown backend"):
        register_attack("fgsm", "nosuch", HandFGSM())
    with pytest.raises(ValueError, match="backends must be among"):
        register_method(MethodSpec("toy", "toy", "linf", defaults={}, attacks={"nosuch": HandFGSM()},
                                   default_backend="nosuch"))
    register_backend("broken", "robench.attacks.noise")
    register_method(MethodSpec("toy", "toy", "none", defaults={}, attacks={"broken": "gaussian_noise"},
                               default_backend="broken"))
    with pytest.raises(TypeError, match="'gaussian_noise' is not an Attack"):
        method_spec("toy").attack("broken")


def test_extras_are_typed_and_read_by_name():
    q, trace = torch.tensor([3, 5]), torch.ones(2, 4)
    out = AttackOutput(torch.zeros(2, 1, 2, 2), {"queries": q, "l2_trace": trace, "mine": torch.zeros(2)})
    assert out.extra.queries is q and out.extra.l2_trace is trace and set(out.extra.other) == {"mine"}
    assert out.extra["queries"] is q and list(out.extra) == ["queries", "l2_trace", "mine"] and len(out.extra) == 3
    both = Extras.cat([out.extra, out.extra.map(lambda t: t[:1])])
    assert both.queries.tolist() == [3, 5, 3] and both.l2_trace.shape == (3, 4) and both.steps_used is None
    assert Extras.cat([]).as_dict() == {} and AttackOutput.of(q).adv is q
