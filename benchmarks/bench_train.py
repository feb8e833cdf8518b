"""Training speed: the input pipeline, defective vs standard train steps, robench's loop vs a bare PyTorch loop,
and torch.compile.

    python benchmarks/bench_train.py [--width 16] [--batch 64]                 # CPU: writes "## Training"
    python benchmarks/bench_train.py --device cuda --width 64 --batch 128      # GPU: writes "## Training on CUDA"

Prints every ratio and records them, with the machine, in docs/benchmarks.md:
- input pipeline alone, images/s: the per-sample pipeline robench used before (torchvision transforms per image
  through a DataLoader, batches copied to the device) vs the batch-wise device pipeline (Split.train_epoch);
  target on the 2-core CPU: >= 2.5x;
- defective/standard ResNet-18 train-step time (target <= 1.03x);
- robench fit() / bare loop throughput on the same model and data, the bare loop also keeping its data on the
  device (target >= 0.9x), and the input pipeline's share of an epoch (target < 5% on a GPU);
- torch.compile: train-step time compiled / eager, and the one-off compile time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from common import interleaved, interleaved_times, machine, paired_ratio, record, sync
from torch import nn
from torch.utils.data import DataLoader

from robench.datasets import DatasetInfo, Split, load_dataset
from robench.datasets.augment import train_transform
from robench.datasets.pipeline import to_float
from robench.datasets.splits import AugmentedSplit
from robench.models import create_model
from robench.models.defective import slots
from robench.runtime import autocast, compile_model, pick_device, prepare, resolve_precision
from robench.training import Recipe, fit


def synthetic(n: int, channels: int = 3, size: int = 32, seed: int = 0) -> Split:
    """n random uint8 images (CIFAR-10's layout and dtype) with random labels of 10 classes."""
    g = torch.Generator().manual_seed(seed)
    return Split(torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8, generator=g),
                 torch.randint(0, 10, (n,), generator=g))


def bench_pipeline(device: torch.device, n: int = 10000, batch: int = 128, rounds: int = 7) -> dict:
    """Images/s of one augmented (pad-4 crop + flip) epoch served to ``device``, per-sample vs batch-wise."""
    split = synthetic(n)
    pin = device.type == "cuda"

    def per_sample() -> None:
        loader = DataLoader(AugmentedSplit(split, train_transform("crop-flip", 32)), batch, shuffle=True,
                            generator=torch.Generator().manual_seed(0), pin_memory=pin)
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    def batch_wise() -> None:
        for _ in split.train_epoch(batch, "crop-flip", seed=0, epoch=0, device=device):
            pass

    times = interleaved_times({"per-sample": per_sample, "batch-wise": batch_wise}, repeats=rounds, warmup=1)
    return {"ratio": paired_ratio(times, "per-sample", "batch-wise"), "threads": torch.get_num_threads(),
            **{k: n / statistics.median(v) for k, v in times.items()}}


def bench_pipelines(device: torch.device) -> list[dict]:
    """:func:`bench_pipeline` on the CPU with one torch thread per core and with one thread (on a machine whose
    cores are busy with other work, multi-threaded small tensor ops can be far slower); on a GPU once."""
    if device.type != "cpu":
        return [bench_pipeline(device)]
    before, results = torch.get_num_threads(), []
    try:
        for threads in sorted({os.cpu_count() or 1, 1}, reverse=True):
            torch.set_num_threads(threads)
            results.append(bench_pipeline(device))
    finally:
        torch.set_num_threads(before)
    return results


def train_step_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    def step() -> None:
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def bench_defective(width: int, batch: int, device: torch.device, rounds: int = 60) -> tuple[float, float, dict]:
    """Train-step time of a defective ResNet-18 with its masks on, over the same network with them off.

    One network, one optimiser: the masks are switched on and off between timed pairs of steps, so weights, memory
    layout and inputs are identical and the masks are the only difference. A second masks-off arm is an A/A
    control: its ratio to the first shows the noise floor. Returns (defective ratio, A/A ratio, median times).
    """
    torch.manual_seed(0)
    x, y = torch.rand(batch, 3, 32, 32, device=device), torch.randint(0, 10, (batch,), device=device)
    model = create_model("resnet18", width=width, keep=0.1).to(device).train()
    masks = {slot: slot.mask for slot in slots(model) if slot.mask is not None}
    step = train_step_fn(model, x, y)

    def arm(on: bool):
        def run() -> None:
            for slot, mask in masks.items():
                slot.mask = mask if on else None
            step()
            step()
        return run

    times = interleaved_times({"standard": arm(False), "control": arm(False), "defective": arm(True)},
                              repeats=rounds, warmup=2)
    medians = {k: statistics.median(v) / 2 for k, v in times.items()}
    return paired_ratio(times, "defective", "standard"), paired_ratio(times, "control", "standard"), medians


def bare_loop(model: nn.Module, split: Split, batch: int, epochs: int, device: torch.device, precision: str,
              test: Split) -> float:
    """The baseline: a plain PyTorch loop with the data already on the device (shuffled there, no augmentation),
    the same optimiser, batch, precision and memory format, then test accuracy."""
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    images, labels = split.images.to(device), split.labels.to(device)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(labels), device=device)
        for i in range(0, len(labels), batch):
            idx = order[i:i + batch]
            x, y = to_float(images[idx]), labels[idx]
            with autocast(device, precision):
                out = model(x)
            loss = nn.functional.cross_entropy(out.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad(), autocast(device, precision):
        return (model(to_float(test.images.to(device))).argmax(1) == test.labels.to(device)).float().mean().item()


def loop_data(device: torch.device, n: int) -> tuple[DatasetInfo, str]:
    """CPU: the offline digits (1x32x32 floats); CUDA: n synthetic CIFAR-shaped uint8 images with crop-flip."""
    if device.type != "cuda":
        return load_dataset("digits"), "none"
    return DatasetInfo("synthetic", synthetic(n), synthetic(1000, seed=1), 10, "crop-flip"), "crop-flip"


def bench_loop(width: int, batch: int, device: torch.device, precision: str, epochs: int = 2,
               n: int = 50000) -> tuple[float, dict, float]:
    """robench fit() vs the bare loop, end to end (fit adds its per-epoch checkpoint); and the input pipeline's
    share of a robench epoch (iterating Split.train_epoch alone over one epoch of fit)."""
    data, augment = loop_data(device, n)
    recipe = Recipe(epochs=epochs, batch_size=batch, lr=0.05, milestones=[], augment=augment)
    tmp = Path(tempfile.mkdtemp())
    channels = data.in_channels
    history: list = []

    def robench_fit() -> None:
        model = create_model("resnet18", width=width, in_channels=channels)
        history[:] = fit(model, data, recipe, seed=0, checkpoint=tmp / "ckpt.safetensors", device=device,
                         precision=precision)["history"]

    def bare() -> None:
        model = prepare(create_model("resnet18", width=width, in_channels=channels), device)
        bare_loop(model, data.train, batch, epochs, device, precision, data.test)

    t = interleaved({"robench": robench_fit, "bare": bare}, repeats=5, warmup=1)

    def pipeline_epoch() -> None:
        for _ in data.train.train_epoch(batch, augment, seed=0, epoch=1, device=device):
            pass

    pipeline_s = interleaved({"pipeline": pipeline_epoch}, repeats=5, warmup=1)["pipeline"]
    return t["bare"] / t["robench"], t, pipeline_s / statistics.median(h.seconds for h in history)


def bench_compile(width: int, batch: int, device: torch.device, rounds: int = 20) -> tuple[float, float, dict]:
    """Train-step time of torch.compile(model) over the eager model (one network), and the first call's time."""
    torch.manual_seed(0)
    x, y = torch.rand(batch, 3, 32, 32, device=device), torch.randint(0, 10, (batch,), device=device)
    model = prepare(create_model("resnet18", width=width), device).train()
    compiled = compile_model(model)
    eager_step, compiled_step = train_step_fn(model, x, y), train_step_fn(compiled, x, y)
    sync()
    t0 = time.perf_counter()
    compiled_step()
    sync()
    first = time.perf_counter() - t0
    times = interleaved_times({"eager": eager_step, "compiled": compiled_step}, repeats=rounds, warmup=2)
    return paired_ratio(times, "compiled", "eager"), first, {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--precision", default=None, help="training precision (default: robench's for the device)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's); 1 gives stable ratios on a CPU shared with other work")
    parser.add_argument("--parts", default="pipeline,defective,loop,compile",
                        help="comma-separated subset; docs/benchmarks.md is written only when all four ran")
    args = parser.parse_args()
    args.load = f"{os.getloadavg()[0]:.1f}"
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    precision = resolve_precision(args.precision, device, training=True)
    parts = set(args.parts.split(","))
    r: dict = {}
    if "pipeline" in parts:
        r["pipe"] = bench_pipelines(device)
        for row in r["pipe"]:
            print(f"input pipeline ({row['threads']} threads), batch-wise / per-sample images/s: {row['ratio']:.2f}x "
                  f"(target >= 2.5x on the 2-core CPU)  per-sample {row['per-sample']:.0f} img/s, batch-wise "
                  f"{row['batch-wise']:.0f}")
    if "defective" in parts:
        r["def"] = bench_defective(args.width, args.batch, device)
        print(f"defective/standard train-step time: {r['def'][0]:.3f}x  (target <= 1.03x; A/A control "
              f"{r['def'][1]:.3f}x)  {r['def'][2]}")
    if "loop" in parts:
        r["loop"] = bench_loop(args.width, args.batch, device, precision)
        print(f"robench/bare training throughput: {r['loop'][0]:.3f}x  (target >= 0.9x)  {r['loop'][1]}; input "
              f"pipeline {100 * r['loop'][2]:.2f}% of an epoch (target < 5% on a GPU)")
    if "compile" in parts:
        r["comp"] = bench_compile(args.width, args.batch, device)
        print(f"compiled/eager train-step time: {r['comp'][0]:.3f}x, first compiled call {r['comp'][1]:.1f} s  "
              f"{r['comp'][2]}")
    if len(r) == 4:
        write_results(args, device, precision, r)


def pipeline_rows(results: list[dict]) -> str:
    return "\n".join(
        f"| input pipeline alone, {row['threads']} torch thread(s): batch-wise on the device (`Split.train_epoch`) / "
        f"per-sample (torchvision transforms per image in a `DataLoader`, batches copied to the device), images/s, "
        f"10000 3x32x32 uint8 images, pad-4 crop + flip, batch 128, median of 7 interleaved epochs | "
        f"{row['ratio']:.2f}x | >= 2.5x | batch-wise {row['batch-wise']:.0f} img/s, per-sample "
        f"{row['per-sample']:.0f} img/s |" for row in results)


def write_results(args, device: torch.device, precision: str, r: dict) -> None:
    pipe, (ratio_d, ratio_aa, t_d), (ratio_l, t_l, share), (ratio_c, first, t_c) = (
        r["pipe"], r["def"], r["loop"], r["comp"])
    load_before = args.load
    data = "digits (1x32x32), no augmentation" if device.type != "cuda" else \
        "50000 synthetic 3x32x32 uint8 images, pad-4 crop + flip (robench) / none (bare)"
    section = "Training" if device.type != "cuda" else "Training on CUDA"
    record(section, f"""
Machine: {machine()}. Device {device}, training precision {precision}; load average while measuring \
{load_before} (start) / {os.getloadavg()[0]:.1f} (end).

| measurement | ratio | target | times |
|---|---|---|---|
{pipeline_rows(pipe)}
| ResNet-18 (width {args.width}) train step, keep 0.1 bottom masks on / off (one network), batch {args.batch}, \
32x32x3, median of 60 paired rounds | {ratio_d:.3f}x | <= 1.03x | defective {t_d['defective']:.4f} s, standard \
{t_d['standard']:.4f} s |
| A/A control: masks off / masks off, same rounds | {ratio_aa:.3f}x | 1x (noise floor) | {t_d['control']:.4f} s |
| robench `fit()` throughput / bare PyTorch loop with its data on the device, ResNet-18 (width {args.width}), \
{data}, 2 epochs, batch {args.batch} | {ratio_l:.3f}x | >= 0.9x | robench {t_l['robench']:.2f} s, bare \
{t_l['bare']:.2f} s |
| input pipeline's share of a robench epoch (iterating `train_epoch` alone / epoch time) | {100 * share:.2f}% | \
< 5% (GPU) | - |
| `torch.compile` train step / eager, ResNet-18 (width {args.width}), batch {args.batch}, median of 20 paired \
rounds | {ratio_c:.3f}x | < 1x pays | compiled {t_c['compiled']:.4f} s, eager {t_c['eager']:.4f} s; first \
compiled call {first:.1f} s |

Both loops end by measuring test accuracy; `fit()` time also includes its per-epoch atomic checkpoint.
The defective rows time one network and one optimiser with the masks switched on and off between timed pairs of
steps (order rotating every round), so the masks are the only difference. Of the 9 masked layers in ResNet-18's
bottom, 5 are followed by a ReLU and fused with it (one multiply forward, none backward); the other 4 cost one
in-place multiply forward and one backward. Two separately built but identical models differed by ~2% here, as
much as the effect: earlier versions of this benchmark, which timed two models, recorded 1.046x-1.104x.
On a CPU that other processes keep busy, multi-threaded rows can be far slower than 1-thread ones (OpenMP
spin-waits): see "Input pipeline on a busy CPU".
Reproduce: `python benchmarks/bench_train.py --device {device.type} --width {args.width} --batch {args.batch}\
{f" --threads {args.threads}" if args.threads else ""}`.
""")


if __name__ == "__main__":
    main()
