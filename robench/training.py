"""The training loop: the papers' recipe, per-epoch atomic checkpoints and exact resume.

Determinism: every epoch reseeds torch from (seed, epoch) before shuffling and augmenting, so a
run resumed from the checkpoint of epoch k gives the same final weights as an uninterrupted run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from robench.data import AugmentedSplit, DatasetInfo, Split, train_transform
from robench.errors import RobenchError
from robench.events import Callback
from robench.runtime import amp_dtype, autocast, predict, prepare, to_device
from robench.store import read_tensor_metadata, read_tensors, write_tensors

log = logging.getLogger(__name__)

PRESETS = ("paper", "quick")
SMALL_DATASETS = ("mnist", "fashion-mnist", "digits")


@dataclass
class Recipe:
    """Optimisation settings (defaults: the papers' CIFAR-10 recipe, appendix D)."""

    epochs: int = 350
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    milestones: list[int] = field(default_factory=lambda: [150, 250])
    gamma: float = 0.1
    label_smoothing: float = 0.0
    augment: str = "default"
    adv_train: bool = False
    adv_eps: float = 8 / 255
    adv_step: float = 2 / 255
    adv_steps: int = 7

    def check(self) -> Recipe:
        problems = [
            (self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}"),
            (self.lr > 0, f"--lr must be > 0, got {self.lr}"),
            (0 <= self.label_smoothing < 1, f"--label-smoothing must be in [0, 1), got {self.label_smoothing}"),
        ]
        for ok, message in problems:
            if not ok:
                raise RobenchError(message)
        return self


def preset(name: str, dataset: str) -> Recipe:
    """``paper``: appendix D (CIFAR 350 epochs, /10 at 150 and 250; MNIST-like 50 epochs with
    the lost milestones taken at the same fractions, 21 and 36). ``quick``: 15 epochs for CPU runs."""
    if name not in PRESETS:
        raise RobenchError(f"unknown preset '{name}': choose one of {', '.join(PRESETS)}")
    if name == "quick":
        return Recipe(epochs=15, batch_size=64, lr=0.05, milestones=[8, 12])
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


def _epoch_seed(seed: int, epoch: int) -> int:
    return seed * 1_000_003 + epoch


def evaluate(model: nn.Module, split: Split, device: torch.device, batch_size: int = 512) -> float:
    """Top-1 accuracy of ``model`` on a split."""
    model.eval()
    preds = torch.cat([predict(model, split.floats(sl), batch_size, device) for sl in _chunks(len(split))])
    return float((preds == split.labels).float().mean()) if len(split) else math.nan


def _chunks(n: int, size: int = 8192):
    return [slice(i, min(i + size, n)) for i in range(0, n, size)] or [slice(0, 0)]


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
) -> dict:
    """Train ``model`` on ``data.train`` per ``recipe``; returns a summary (history, wall time, accuracy).

    A checkpoint is written atomically after every epoch; with ``resume`` training continues
    from it and reaches the same weights as an uninterrupted run. Under torchrun, each process
    trains on its shard with DistributedDataParallel (the batch size stays the global one) and
    rank 0 writes the checkpoints.
    """
    dist = dist_context()
    emit = callback if callback and dist.main else (lambda kind, payload: None)
    if dist.world > 1 and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    model = prepare(model, device)
    net = model
    if dist.world > 1:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    opt = torch.optim.SGD(net.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                          weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, recipe.milestones, recipe.gamma)
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda" and _fp16(device))
    start, history, wall = 0, [], 0.0
    if resume and checkpoint.exists():
        tensors, state = load_checkpoint(checkpoint)
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        _restore_optimizer(opt, {k: v.to(device) for k, v in tensors.items()}, state["param_groups"])
        sched.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        start, history, wall = state["epoch"], state["history"], state["wall_time_s"]
        log.info("resuming from epoch %d", start)
    augment = data.default_augment if recipe.augment == "default" else recipe.augment
    dataset = AugmentedSplit(data.train, train_transform(augment, data.input_size))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    adversary = _madry_pgd(recipe) if recipe.adv_train else None
    batch_size = max(recipe.batch_size // dist.world, 1)
    steps_per_epoch = math.ceil(len(dataset) / dist.world / batch_size)
    emit("start", {"epochs": recipe.epochs, "start_epoch": start, "steps_per_epoch": steps_per_epoch,
                   "total": recipe.epochs * steps_per_epoch, "done": start * steps_per_epoch})
    for epoch in range(start, recipe.epochs):
        t0 = time.perf_counter()
        torch.manual_seed(_epoch_seed(seed, epoch) + dist.rank)
        loader = _loader(dataset, batch_size, _epoch_seed(seed, epoch), dist, device)
        stats = _run_epoch(net, loader, opt, scaler, loss_fn, device, adversary, epoch, emit)
        sched.step()
        stats.update(epoch=epoch + 1, lr=opt.param_groups[0]["lr"], seconds=time.perf_counter() - t0)
        history.append(stats)
        wall += stats["seconds"]
        state = {**(info or {}), "epoch": epoch + 1, "history": history, "wall_time_s": wall}
        if dist.main:
            save_checkpoint(checkpoint, model, opt, sched, scaler, state)
        dist.barrier()
        emit("epoch", {**stats, "done": (epoch + 1) * steps_per_epoch})
    test_acc = evaluate(model, data.test, device)
    return {"history": history, "wall_time_s": wall, "clean_accuracy": test_acc,
            "train_accuracy": history[-1]["train_accuracy"] if history else math.nan}


def _loader(dataset, batch_size: int, seed: int, dist: Dist, device: torch.device) -> DataLoader:
    """Shuffled batches, seeded per epoch; under torchrun each rank gets its own shard."""
    pin = device.type == "cuda"
    if dist.world == 1:
        return DataLoader(dataset, batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed),
                          pin_memory=pin)
    sampler = DistributedSampler(dataset, dist.world, dist.rank, shuffle=True, seed=seed)
    return DataLoader(dataset, batch_size, sampler=sampler, pin_memory=pin)


def _fp16(device: torch.device) -> bool:
    return amp_dtype(device) == torch.float16


def _run_epoch(model, loader, opt, scaler, loss_fn, device, adversary, epoch, emit) -> dict:
    model.train()
    seen = correct = 0
    total_loss = 0.0
    t0 = time.perf_counter()
    for step, (x, y) in enumerate(loader):
        x, y = to_device(x, device), y.to(device)
        if adversary is not None:
            x = adversary(model, x, y)
        with autocast(device):
            out = model(x)
            loss = loss_fn(out.float(), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        seen += len(y)
        correct += int((out.argmax(1) == y).sum())
        total_loss += float(loss.detach()) * len(y)
        emit("batch", {"epoch": epoch, "step": step + 1, "done": epoch * len(loader) + step + 1,
                       "loss": total_loss / seen, "accuracy": correct / seen,
                       "images_per_s": seen / max(time.perf_counter() - t0, 1e-9)})
    return {"train_loss": total_loss / max(seen, 1), "train_accuracy": correct / max(seen, 1),
            "images_per_s": seen / max(time.perf_counter() - t0, 1e-9)}


def _madry_pgd(recipe: Recipe) -> Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]:
    """Madry's PGD adversarial training examples through Foolbox's LinfPGD (random start)."""
    import foolbox as fb

    attack = fb.attacks.LinfPGD(abs_stepsize=recipe.adv_step, steps=recipe.adv_steps, random_start=True)

    def perturb(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        model.eval()
        _, adv, _ = attack(fb.PyTorchModel(model, bounds=(0, 1), device=x.device), x, y, epsilons=recipe.adv_eps)
        model.train()
        return adv.detach()

    return perturb


def recipe_from(base: Recipe, **overrides: Any) -> Recipe:
    """``base`` with every non-None override applied, checked."""
    return replace(base, **{k: v for k, v in overrides.items() if v is not None}).check()


def recipe_dict(recipe: Recipe) -> dict:
    return asdict(recipe)
