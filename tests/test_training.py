"""Training: learns real digits, is deterministic, and resumes to identical weights."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import robench
from robench import store, training
from robench.errors import RobenchError
from robench.training import preset


def weights(ws, name):
    return store.read_tensors(Path(ws) / "models" / name / "model.safetensors")


def test_training_on_digits_beats_chance_widely(trained_ws):
    df = robench.list_workspace_models(trained_ws)
    acc = dict(zip(df["name"], df["clean_accuracy"], strict=True))
    assert acc["tiny"] > 0.6  # chance is 0.1
    assert acc["tiny-keep0.3-bottom"] > 0.4


def test_saved_metadata_rebuilds_the_model(trained_ws):
    record = store.read_model("tiny-keep0.3-bottom", trained_ws)
    assert record.config.keep == 0.3 and record.dataset.name == "digits" and record.dataset.fingerprint
    assert record.recipe.epochs == 4 and record.versions["torch"] == torch.__version__
    assert record.origin.kind == "train" and record.epochs == 4 and record.preset == "quick"
    model = robench.load_model("tiny-keep0.3-bottom", workspace=trained_ws)
    x = store.load_set  # noqa: F841  (API is importable)
    mean = model.normalize.mean
    assert mean.shape == (1, 32, 32) and 0 < float(mean.mean()) < 1


@pytest.mark.slow
def test_interrupted_then_resumed_equals_uninterrupted(ws):
    kw = dict(dataset="digits", workspace=ws, preset="quick", epochs=3, device="cpu", seed=3)
    robench.train("tiny", name="full", keep=0.5, **kw)

    def stop_after_first_epoch(kind, payload):
        if kind == "epoch" and payload["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        robench.train("tiny", name="cut", keep=0.5, callback=stop_after_first_epoch, **kw)
    assert (Path(ws) / "models" / "cut" / "checkpoint.safetensors").exists()
    with pytest.raises(RobenchError, match="already exists"):
        robench.train("tiny", name="cut", keep=0.5, **kw)
    record = robench.train("tiny", name="cut", keep=0.5, resume=True, **kw)
    full, cut = weights(ws, "full"), weights(ws, "cut")
    assert full.keys() == cut.keys()
    assert all(torch.equal(full[k], cut[k]) for k in full)
    assert len(record.history) == 3
    assert not (Path(ws) / "models" / "cut" / "checkpoint.safetensors").exists()


@pytest.mark.slow
def test_resume_after_kill_9(ws, tmp_path):
    """A real SIGKILL mid-training, then `--resume`, gives the weights of an uninterrupted run."""
    args = ["train", "tiny", "--dataset", "digits", "--preset", "quick", "--epochs", "4", "--width", "8",
            "--workspace", ws, "--device", "cpu"]
    cli = [sys.executable, "-m", "robench.cli"]
    subprocess.run(cli + args + ["--name", "full"], check=True, capture_output=True)
    proc = subprocess.Popen(cli + args + ["--name", "killed"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = Path(ws) / "models" / "killed" / "checkpoint.safetensors"
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert ckpt.exists(), "the run should have checkpointed before it was killed"
    subprocess.run(cli + args + ["--name", "killed", "--resume"], check=True, capture_output=True)
    full, killed = weights(ws, "full"), weights(ws, "killed")
    assert all(torch.equal(full[k], killed[k]) for k in full)
    assert not list((Path(ws) / "models" / "killed").glob(".*tmp"))


@pytest.mark.slow
def test_overwrite_replaces(ws):
    kw = dict(dataset="digits", workspace=ws, preset="quick", epochs=1, device="cpu")
    robench.train("tiny", **kw)
    record = robench.train("tiny", overwrite=True, seed=0, **kw)
    assert record.name == "tiny"


def test_paper_preset_matches_appendix_d():
    cifar, mnist = preset("paper", "cifar10"), preset("paper", "mnist")
    assert (cifar.epochs, cifar.batch_size, cifar.lr, cifar.momentum, cifar.weight_decay, cifar.milestones) == (
        350, 128, 0.1, 0.9, 5e-4, [150, 250])
    assert mnist.epochs == 50


def test_default_names_show_keep_and_placement():
    from robench.api import default_model_name
    from robench.models import DefectSpec

    assert default_model_name("densenet121", DefectSpec()) == "densenet121"
    assert default_model_name("resnet18", DefectSpec(keep=0.3, keep_top=0.7, placement="both")) == (
        "resnet18-keep0.3-bottom-keep0.7-top")
    assert default_model_name("resnet18", DefectSpec(keep=0.1, placement="top")) == "resnet18-keep0.1-top"


@pytest.mark.slow
def test_label_smoothing_and_adversarial_training_run(ws):
    kw = dict(dataset="digits", workspace=ws, preset="quick", epochs=1, device="cpu", width=4)
    assert robench.train("tiny", label_smoothing=0.1, **kw).recipe.label_smoothing == 0.1
    record = robench.train("tiny", adv_train=True, batch_size=256, **kw)
    assert record.name == "tiny-adv" and record.recipe.adv_train


@pytest.mark.slow
def test_torchrun_data_parallel_on_cpu(ws):
    """`torchrun --nproc_per_node=2 -m robench.cli train ...` trains one model; rank 0 saves it."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
           "-m", "robench.cli", "train", "tiny", "--dataset", "digits", "--preset", "quick", "--epochs", "2",
           "--width", "8", "--workspace", ws, "--device", "cpu"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    record = store.read_model("tiny", ws)
    assert len(record.history) == 2 and record.clean_accuracy > 0.1
    assert not (Path(ws) / "models" / "tiny" / "checkpoint.safetensors").exists()


def test_fast_preset_is_a_one_cycle_schedule():
    cifar, mnist = preset("fast", "cifar10"), preset("fast", "mnist")
    assert (cifar.epochs, cifar.batch_size, cifar.lr, cifar.schedule, cifar.nesterov, cifar.weight_decay) == (
        40, 512, 0.4, "onecycle", True, 5e-4)
    assert cifar.label_smoothing == 0 and mnist.epochs == 10 and preset("paper", "cifar10").schedule == "step"
    with pytest.raises(RobenchError, match="--milestones apply to the step schedule"):
        training.recipe_from(cifar, milestones=[20])


@pytest.mark.slow
def test_fast_preset_trains_with_progress_read_once_per_epoch(ws, monkeypatch):
    """One-cycle on digits (at batch 128 / lr 0.1: batch 512 leaves digits 3 steps per epoch): the lr rises over the
    warm-up quarter (1.5 of 6 epochs) and then falls to ~0, the model learns, and with a long progress interval
    'batch' events come only at each epoch's end, carrying the epoch's device-accumulated loss and accuracy."""
    monkeypatch.setattr(training, "PROGRESS_INTERVAL_S", 1e9)
    events = []
    record = robench.train("tiny", dataset="digits", workspace=ws, preset="fast", epochs=6, batch_size=128, lr=0.1,
                           width=8, device="cpu", callback=lambda kind, p: events.append((kind, dict(p))))
    lrs = [h.lr for h in record.history]
    assert lrs[0] < lrs[1] and lrs[1:] == sorted(lrs[1:], reverse=True) and len(set(lrs)) == len(lrs)
    assert max(lrs) <= 0.1 and lrs[-1] < 1e-3
    assert record.clean_accuracy > 0.5 and record.recipe.schedule == "onecycle"
    batches = [p for kind, p in events if kind == "batch"]
    steps = next(p for kind, p in events if kind == "start")["steps_per_epoch"]
    assert [(p["epoch"], p["step"]) for p in batches] == [(e, steps) for e in range(6)]
    for p, h in zip(batches, record.history, strict=True):
        assert p["loss"] == pytest.approx(h.train_loss) and p["accuracy"] == h.train_accuracy


def test_compile_trains_attacks_and_saves_plain_weights(ws, monkeypatch):
    """--compile goes through torch.compile (the 'eager' backend here: same graph capture, no code generation), and
    the saved weights are the plain module's; where torch.compile is unsupported it is a one-line error."""
    from robench import runtime

    compiled = []
    monkeypatch.setattr(runtime, "COMPILE_BACKEND", "eager")
    real = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model, **kw: compiled.append(model) or real(model, **kw))
    kw = dict(dataset="digits", workspace=ws, preset="quick", epochs=1, width=4, device="cpu")
    record = robench.train("tiny", compile=True, **kw)
    assert len(compiled) == 1 and not any("_orig_mod" in k for k in weights(ws, "tiny"))
    assert record.clean_accuracy > 0.1
    s = robench.attack("tiny", "fgsm", n=32, workspace=ws, device="cpu", compile=True)
    assert len(compiled) == 2 and s.n > 0
    monkeypatch.setattr(torch._dynamo, "is_dynamo_supported", lambda: False)
    with pytest.raises(RobenchError, match="--compile: torch.compile is not supported"):
        robench.train("tiny", name="nocompile", compile=True, **kw)
