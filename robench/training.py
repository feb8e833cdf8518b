"""The training loop: the papers' recipe, per-epoch atomic checkpoints and exact resume.

Determinism: every epoch's order and augmentation come from generators seeded by (seed, epoch), and torch's
global RNG (dropout baselines) is reseeded from them too, so a run resumed from the checkpoint of epoch k gives
the same final weights as an uninterrupted run on the same device.

No step waits for the device: the input pipeline lives on it (:meth:`robench.datasets.Split.train_epoch`), loss
and accuracy accumulate there, and progress is read back at most every ``PROGRESS_INTERVAL_S`` seconds.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from robench.datasets import augment as augmentation
from robench.datasets.splits import DatasetInfo, epoch_seed
from robench.errors import RobenchError
from robench.events import Callback
from robench.records import SCHEDULES, Epoch, Recipe, TrainingHistory  # noqa: F401  (re-exported: SCHEDULES, Recipe)
from robench.runtime import autocast, compile_model, in_precision, predict, prepare, resolve_precision
from robench.store import read_tensor_metadata, read_tensors, write_tensors

log = logging.getLogger(__name__)

PRESETS = ("paper", "quick", "fast")
SMALL_DATASETS = ("mnist", "fashion-mnist", "digits")
PROGRESS_INTERVAL_S = 0.25  # 'batch' events (and the host syncs they cost) at most this often


def scale_milestones(milestones: list[int], from_epochs: int, to_epochs: int) -> list[int]:
    """The preset's milestones moved to the same fractions of a ``to_epochs`` run (rounded half up).

    Milestones that round to 0, or to the last epoch or beyond, are dropped (they could not take effect);
    two that round to the same epoch both stay, so the learning rate still falls by the preset's full factor.

    >>> scale_milestones([150, 250], 350, 3), scale_milestones([150, 250], 350, 50)
    ([1, 2], [21, 36])
    """
    scaled = [max(1, math.floor(m * to_epochs / from_epochs + 0.5)) for m in milestones]
    return [m for m in scaled if m < to_epochs]


def preset(name: str, dataset: str) -> Recipe:
    """``paper``: appendix D (CIFAR 350 epochs, /10 at 150 and 250; MNIST-like 50 epochs with
    the lost milestones taken at the same fractions, 21 and 36). ``quick``: 15 epochs for CPU runs.
    ``fast``: a one-cycle schedule for GPUs after Smith's super-convergence and Page's fast CIFAR-10 runs
    (docs/guides/training.md, "Presets"): 40 epochs (MNIST-like data: 10), batch 512, peak lr 0.4 (0.1 scaled
    linearly with the batch), linear warm-up over the first quarter then linear decay to ~0, Nesterov momentum 0.9,
    weight decay 5e-4, no label smoothing (a baseline robench compares against)."""
    if name not in PRESETS:
        raise RobenchError(f"unknown preset '{name}': choose one of {', '.join(PRESETS)}")
    if name == "quick":
        return Recipe(epochs=15, batch_size=64, lr=0.05, milestones=[8, 12])
    if name == "fast":
        return Recipe(epochs=10 if dataset in SMALL_DATASETS else 40, batch_size=512, lr=0.4, milestones=[],
                      schedule="onecycle", warmup=0.25, nesterov=True)
    if dataset in SMALL_DATASETS:
        return Recipe(epochs=50, milestones=[21, 36])
    return Recipe()




@dataclass(frozen=True)
class Dist:
    """This process's place in a torchrun job (rank 0 of 1 when run plainly)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()


def dist_context() -> Dist:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1): NCCL on CUDA, else gloo."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return Dist(torch.distributed.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0")))


def evaluate(model: nn.Module, split, device: torch.device, batch_size: int = 512) -> float:
    """Top-1 accuracy of ``model`` on a split (in memory or streamed: read batch by batch)."""
    model.eval()
    if not len(split):
        return math.nan
    preds = torch.cat([predict(model, x, batch_size, device) for _, x, _ in split.batches(8192)])
    return float((preds == split.labels).float().mean())


def _optimizer_state(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list]:
    state = opt.state_dict()
    tensors = {f"opt.{i}.{k}": v for i, s in state["state"].items() for k, v in s.items() if torch.is_tensor(v)}
    return tensors, state["param_groups"]


def _restore_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": groups})


def save_checkpoint(path: Path, model: nn.Module, opt: torch.optim.Optimizer, sched, scaler, info: dict) -> None:
    """One safetensors file holding model and optimiser tensors, the rest as JSON metadata."""
    opt_tensors, groups = _optimizer_state(opt)
    tensors = {**{f"model.{k}": v for k, v in model.state_dict().items()}, **opt_tensors}
    extra = {"param_groups": groups, "scheduler": sched.state_dict(), "scaler": scaler.state_dict()}
    write_tensors(path, tensors, {"robench": json.dumps({**info, **extra})})


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    return read_tensors(path), json.loads(read_tensor_metadata(path)["robench"])


def _scheduler_state(state: dict) -> dict:
    """A scheduler state read back from JSON: MultiStepLR's milestone counter has int keys again.

    JSON turns ``Counter({150: 1})`` into ``{"150": 1}``; loaded as is, a resumed run would never decay.
    """
    milestones = state.get("milestones")
    if isinstance(milestones, dict):
        state = {**state, "milestones": Counter({int(k): v for k, v in milestones.items()})}
    return state


def fit(
    model: nn.Module,
    data: DatasetInfo,
    recipe: Recipe,
    *,
    seed: int,
    checkpoint: Path,
    device: torch.device,
    resume: bool = False,
    callback: Callback | None = None,
    info: dict | None = None,
    precision: str | None = None,
    compile: bool = False,
    workers: int | None = None,
) -> dict:
    """Train ``model`` on ``data.train`` per ``recipe``; returns a summary (the run's
    :class:`~robench.records.TrainingHistory`, wall time, accuracy).

    A checkpoint is written atomically after every epoch; with ``resume`` training continues
    from it and reaches the same weights as an uninterrupted run. Under torchrun, each process
    trains on its shard with DistributedDataParallel (the batch size stays the global one) and
    rank 0 writes the checkpoints. The training split serves each epoch's batches (``data.train.train_epoch``:
    in memory on the device, or streamed from image files by ``workers`` DataLoader workers). ``precision``
    (fp32, bf16, fp16; default: bf16 on CUDA, fp32 on CPU) is the forward pass's autocast dtype, with loss
    scaling for fp16 only; ``compile`` runs the model through torch.compile. The test accuracy is measured in
    fp32.

    ``callback(kind, payload)`` receives 'start' (epochs, start_epoch, steps_per_epoch), 'batch' (epoch, step,
    loss, accuracy, images_per_s: running values of the epoch, at most every ``PROGRESS_INTERVAL_S`` seconds and
    after its last step) and 'epoch' (the epoch's stats).
    """
    dist = dist_context()
    emit = callback if callback and dist.main else None
    if dist.world > 1 and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    precision = resolve_precision(precision, device, training=True)
    model = prepare(model, device)
    net = model
    if dist.world > 1:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if compile:
        net = compile_model(net)
    fp16 = precision == "fp16"
    # fused SGD takes the scaler's inf check on the device: fp16 steps then need no host sync either
    opt = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov,
                          weight_decay=recipe.weight_decay, fused=True if fp16 and device.type == "cuda" else None)
    augment = augmentation.resolve(recipe.augment, data.default_augment)
    batch_size = max(recipe.batch_size // dist.world, 1)

    def epoch_batches(epoch: int):
        return data.train.train_epoch(batch_size, augment, seed, epoch, device, rank=dist.rank, world=dist.world,
                                      workers=workers)

    steps_per_epoch = len(epoch_batches(0))
    sched, per_step = _scheduler(opt, recipe, steps_per_epoch)
    scaler = torch.amp.GradScaler(device.type, enabled=fp16)
    start, history, wall = 0, [], 0.0
    if resume and checkpoint.exists():
        tensors, state = load_checkpoint(checkpoint)
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        _restore_optimizer(opt, {k: v.to(device) for k, v in tensors.items()}, state["param_groups"])
        sched.load_state_dict(_scheduler_state(state["scheduler"]))
        scaler.load_state_dict(state["scaler"])
        start, history, wall = state["epoch"], list(TrainingHistory.from_json(state["history"])), state["wall_time_s"]
        log.info("resuming from epoch %d", start)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    adversary = _madry_pgd(recipe, precision) if recipe.adv_train else None
    step = _train_step(net, opt, sched if per_step else None, scaler, loss_fn, device, precision, adversary)
    if emit:
        emit("start", {"epochs": recipe.epochs, "start_epoch": start, "steps_per_epoch": steps_per_epoch,
                       "total": recipe.epochs * steps_per_epoch, "done": start * steps_per_epoch})
    for epoch in range(start, recipe.epochs):
        t0 = time.perf_counter()
        torch.manual_seed(epoch_seed(seed, epoch) + dist.rank)
        stats = _run_epoch(net, epoch_batches(epoch), step, device, epoch, emit)
        if not per_step:
            sched.step()
        done = Epoch(epoch + 1, lr=opt.param_groups[0]["lr"], seconds=time.perf_counter() - t0, **stats)
        history.append(done)
        wall += done.seconds or 0.0
        state = {**(info or {}), "epoch": epoch + 1, "history": [e.to_json() for e in history], "wall_time_s": wall}
        if dist.main:
            save_checkpoint(checkpoint, model, opt, sched, scaler, state)
        dist.barrier()
        if emit:
            emit("epoch", {**done.to_json(), "done": (epoch + 1) * steps_per_epoch})
    test_acc = evaluate(model, data.test, device)
    return {"history": TrainingHistory(tuple(history)), "wall_time_s": wall, "clean_accuracy": test_acc,
            "precision": precision, "train_accuracy": history[-1].train_accuracy if history else math.nan}


def _scheduler(opt: torch.optim.Optimizer, recipe: Recipe, steps_per_epoch: int):
    """The learning-rate schedule and whether it steps after every batch (one-cycle) or every epoch (step)."""
    if recipe.schedule == "onecycle":
        # linear warm-up from lr/25 to lr over `warmup` of the run, then linear decay to lr/25/1e4; one step more
        # than the run takes, so the scheduler's step after the last batch lands on that floor, not below it
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=recipe.lr, total_steps=recipe.epochs * steps_per_epoch + 1, pct_start=recipe.warmup,
            anneal_strategy="linear", cycle_momentum=False), True
    return torch.optim.lr_scheduler.MultiStepLR(opt, recipe.milestones, recipe.gamma), False


Step = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def _train_step(net: nn.Module, opt, sched, scaler, loss_fn, device: torch.device, precision: str,
                adversary) -> Step:
    """One optimisation step on a batch; returns (loss, number correct) as device tensors (no host sync)."""

    def step(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if adversary is not None:
            x = adversary(net, x, y)
        with autocast(device, precision):
            out = net(x)
        loss = loss_fn(out.float(), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        if sched is not None:
            sched.step()
        return loss.detach(), (out.argmax(1) == y).sum()

    return step


def _run_epoch(net: nn.Module, batches, step: Step, device: torch.device, epoch: int,
               emit: Callback | None) -> dict:
    """Train one epoch; loss and accuracy sums stay on the device and are read only for progress and the end."""
    net.train()
    loss_sum = torch.zeros((), dtype=torch.float32, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen, steps = 0, len(batches)
    t0 = shown = time.perf_counter()
    for i, (x, y) in enumerate(batches, 1):
        loss, right = step(x, y)
        loss_sum += loss * len(y)
        correct += right
        seen += len(y)
        if emit and (i == steps or time.perf_counter() - shown >= PROGRESS_INTERVAL_S):
            emit("batch", {"epoch": epoch, "step": i, "done": epoch * steps + i, "loss": float(loss_sum) / seen,
                           "accuracy": int(correct) / seen,
                           "images_per_s": seen / max(time.perf_counter() - t0, 1e-9)})
            shown = time.perf_counter()
    return {"train_loss": float(loss_sum) / max(seen, 1), "train_accuracy": int(correct) / max(seen, 1),
            "images_per_s": seen / max(time.perf_counter() - t0, 1e-9)}


def _madry_pgd(recipe: Recipe, precision: str) -> Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]:
    """Madry's PGD adversarial training examples through Foolbox's LinfPGD (random start), in the training
    precision."""
    import foolbox as fb

    attack = fb.attacks.LinfPGD(abs_stepsize=recipe.adv_step, steps=recipe.adv_steps, random_start=True)

    def perturb(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        model.eval()
        fmodel = fb.PyTorchModel(in_precision(model, precision), bounds=(0, 1), device=x.device)
        _, adv, _ = attack(fmodel, x, y, epsilons=recipe.adv_eps)
        model.train()
        return adv.detach()

    return perturb


def recipe_from(base: Recipe, **overrides: Any) -> Recipe:
    """``base`` with every non-None override applied, checked.

    ``epochs`` without ``milestones`` moves the preset's milestones to the same fractions of the new run
    (:func:`scale_milestones`): a 3-epoch paper run decays at epochs 1 and 2, not never.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    if "epochs" in given and "milestones" not in given:
        given["milestones"] = scale_milestones(base.milestones, base.epochs, given["epochs"])
    return replace(base, **given).check()


def recipe_dict(recipe: Recipe) -> dict:
    return recipe.to_json()
