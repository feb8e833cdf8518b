"""--precision: fp32 attacks equal a hand-written fp32 loop on every backend, the precision is recorded and
round-trips, kept examples are decided in it, and cached predictions of two precisions never mix.

bf16 autocast runs on the CPU too, so every path is exercised here without a GPU.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_cli_matrix import one_line_error, run
from test_matrix import copy_models

import robench
from robench import store
from robench.attacks import method_spec, perturb, perturb_output
from robench.datasets import load_dataset
from robench.errors import RobenchError
from robench.runtime import default_precision, resolve_precision
from robench.scoring import matrix
from robench.scoring.matrix import cache_path

EPS, STEP, STEPS = 16 / 255, 1 / 255, 8


def hand_pgd(model, x, y):
    """Basic iterative method in plain fp32 PyTorch."""
    adv = x.clone()
    for _ in range(STEPS):
        adv.requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(adv), y, reduction="sum"), adv)
        adv = torch.min(torch.max(adv.detach() + STEP * grad.sign(), x - EPS), x + EPS).clamp_(0, 1)
    return adv


@pytest.fixture(scope="module")
def batch(trained_ws):
    data = load_dataset("digits")
    return robench.load_model("tiny", trained_ws).eval(), data.test.floats(slice(0, 48)), data.test.labels[:48]


@pytest.mark.parametrize("backend", method_spec("pgd").backends)
def test_fp32_pgd_equals_the_hand_written_fp32_loop(batch, backend):
    model, x, y = batch
    """Equal up to the documented sign flips of near-zero gradients (multi-threaded conv backward is not bit-exact,
    and the libraries compute their own cross-entropy): on an idle machine the images are identical."""
    ref = hand_pgd(model, x, y)
    fp32 = perturb(model, x, y, "pgd", backend=backend, eps=EPS, step=STEP, steps=STEPS, precision="fp32")
    bf16 = perturb(model, x, y, "pgd", backend=backend, eps=EPS, step=STEP, steps=STEPS, precision="bf16")
    assert not model.training and all(p.requires_grad for p in model.parameters())  # left as it was
    differ32, differ16 = ((fp32 - ref).abs() > 1e-6).float().mean(), ((bf16 - ref).abs() > 1e-6).float().mean()
    assert differ32 < 0.005  # measured: 0 (idle machine)
    assert differ16 > 0.05 and differ16 > 10 * differ32  # measured: ~12%: the precision reaches the backend


QUERY_SETTINGS = {"square": {"queries": 20}, "hopskipjump": {"queries": 60, "init_directions": 10, "eps": 5.0},
                  "boundary": {"steps": 10, "init_directions": 10}}


@pytest.mark.parametrize(("method", "backend"), [(m, b) for m in QUERY_SETTINGS for b in method_spec(m).backends])
def test_precision_reaches_the_query_attacks_and_boundary(batch, method, backend):
    """Every forward pass of the black-box attacks (through the query counter, ART and Foolbox) runs in the asked
    precision, and the model is left as it was."""
    model, x, y = batch
    seen = []

    def record(module, inputs):
        seen.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)

    for precision, dtype in (("bf16", torch.bfloat16), ("fp32", None)):
        seen.clear()
        hook = model.register_forward_pre_hook(record)
        try:
            out = perturb_output(model, x[:8], y[:8], method, backend, seed=0, precision=precision,
                                 **QUERY_SETTINGS[method])
        finally:
            hook.remove()
        assert seen and set(seen) == {dtype}, precision
        assert out.adv.dtype == torch.float32 and out.adv.shape == x[:8].shape
    assert not model.training and all(p.requires_grad for p in model.parameters())


def test_defaults_and_bad_precision(ws):
    assert default_precision(torch.device("cpu"), training=True) == "fp32"
    assert default_precision(torch.device("cuda"), training=False) == "fp32"  # attacks and scores: fp32 everywhere
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"
    with pytest.raises(RobenchError, match="unknown precision 'fp8'.*fp32, bf16, fp16"):
        robench.train("tiny", dataset="digits", workspace=ws, epochs=1, device="cpu", precision="fp8")
    assert not Path(ws).exists() or not list(Path(ws).rglob("*.safetensors"))
    one_line_error(run("matrix", "--workspace", ws, "--precision", "fp8"), "unknown --precision 'fp8'")


def test_precision_is_recorded_and_decides_the_kept_examples(trained_ws, tmp_path):
    ws = copy_models(trained_ws, tmp_path)
    model = robench.load_model("tiny", ws).eval()
    rec = robench.train("tiny", name="tiny-bf16", dataset="digits", workspace=ws, preset="quick", epochs=1, width=4,
                        device="cpu", precision="bf16")
    assert rec.precision == "bf16" and store.read_model("tiny-bf16", ws).precision == "bf16"
    assert math.isfinite(rec.history[0].train_loss) and rec.clean_accuracy > 0

    srec = robench.attack("tiny", "pgd", eps=EPS, step=STEP, steps=STEPS, n=80, workspace=ws, device="cpu",
                          precision="bf16")
    assert srec.name.endswith("-n80-bf16")  # the default name tells it from an fp32 set
    assert srec.precision == "bf16" and store.read_set(srec.name, ws).precision == "bf16"
    s = store.load_set(srec.name, ws)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        adv_pred = model(s.adv).float().argmax(1)
        clean_pred = model(s.clean).float().argmax(1)
    assert len(s) > 0 and (clean_pred == s.labels).all() and (adv_pred != s.labels).all()
    assert torch.equal(adv_pred, s.source_pred)

    df = matrix(ws, models="tiny", sets=srec.name, device="cpu", precision="bf16")
    assert df.precision.tolist() == ["bf16"] and df.relation.tolist() == ["white-box"]
    assert df.defense_rate.tolist() == [0.0]  # filtered and scored in one precision: the white-box cell is 0


def test_cached_predictions_of_two_precisions_never_mix(trained_ws, tmp_path):
    ws = copy_models(trained_ws, tmp_path)
    srec = robench.attack("tiny", "fgsm", eps=0.1, n=60, workspace=ws, device="cpu")
    fp32 = matrix(ws, device="cpu", precision="fp32")
    bf16 = matrix(ws, device="cpu", precision="bf16")
    assert set(fp32.precision) == {"fp32"} and set(bf16.precision) == {"bf16"}
    sha = store.read_model("tiny-keep0.3-bottom", ws).weights_sha256
    paths = {p: cache_path(ws, sha, srec.sha256, p) for p in ("fp32", "bf16")}
    assert all(path.exists() for path in paths.values())

    # each precision's predictions are what that precision computes, independently of the other's cache
    model = robench.load_model("tiny-keep0.3-bottom", ws).eval()
    s = store.load_set(srec.name, ws)
    with torch.no_grad():
        plain = model(s.adv).argmax(1)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            reduced = model(s.adv).float().argmax(1)
    assert torch.equal(store.read_tensors(paths["fp32"])["adv_pred"], plain)
    assert torch.equal(store.read_tensors(paths["bf16"])["adv_pred"], reduced)

    # poison the bf16 cache: fp32 results do not move, bf16 results read their own file
    poisoned = {**store.read_tensors(paths["bf16"])}
    poisoned["adv_pred"] = poisoned["labels"].clone()  # "every adversarial image defended"
    store.write_tensors(paths["bf16"], poisoned)
    again = matrix(ws, device="cpu", precision="fp32")
    assert again.drop(columns="precision").equals(fp32.drop(columns="precision"))
    row = matrix(ws, models="tiny-keep0.3-bottom", device="cpu", precision="bf16").iloc[0]
    assert row.defense_rate == 1.0
