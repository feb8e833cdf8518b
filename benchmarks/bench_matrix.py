"""Matrix scoring throughput vs plain batched inference of the same models on the same images.

Self-contained: builds a temporary workspace with two untrained ResNet-18s (width 16, one standard, one
defective keep 0.3) on the offline ``digits`` geometry (1x32x32, 10 classes) and one synthetic set of N random
images (its clean images are not test images, so the matrix must run every model on clean AND adversarial images,
exactly like the baseline). Timed:

- baseline: ``runtime.predict`` of each (already loaded) model on the test split, the set's clean and adversarial
  images (already in memory);
- matrix, cold cache: ``robench.scoring.matrix`` end to end (load models, dataset, set; predict; score; write
  the cache), on a fresh cache each repeat;
- matrix, warm cache: the same call again (every cell read from the cache).

Ratio = baseline time / cold matrix time (throughput relative to plain inference; target >= 0.9).

    .venv/bin/python benchmarks/bench_matrix.py [--n 2000] [--device cpu] [--repeats 2] [--precision fp32]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch

import robench
from robench import store
from robench.datasets import load_dataset
from robench.models import create_model
from robench.records import ModelRecord, SetRecord, SourceRef
from robench.runtime import pick_device, predict, prepare
from robench.scoring import matrix

DIGITS = load_dataset("digits").ref


def build(ws: Path, n: int, width: int) -> list[str]:
    names = []
    for keep in (1.0, 0.3):
        torch.manual_seed(0)
        model = create_model("resnet18", num_classes=10, in_channels=1, input_size=32, width=width, keep=keep)
        name = f"resnet18-keep{keep:g}"
        record = store.save_model(model.state_dict(), ModelRecord(name, model.config, DIGITS, seed=0),
                                  store.model_dir(name, ws))
        names.append(name)
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(n, 1, 32, 32, generator=g)
    adv = (clean + 0.03 * torch.randn(clean.shape, generator=g)).clamp(0, 1)
    labels = torch.randint(0, 10, (n,), generator=g)
    d = (adv - clean).flatten(1)
    with store.SetWriter(store.set_dir("synthetic", ws)) as writer:
        for sl in (slice(i, i + 1000) for i in range(0, n, 1000)):  # sharded like a streamed set
            writer.add({"adv": adv[sl], "clean": clean[sl], "labels": labels[sl], "source_pred": (labels[sl] + 1) % 10,
                        "indices": torch.arange(n)[sl] % 360, "l2": d[sl].norm(dim=1), "linf": d[sl].abs().amax(1)})
        writer.finish(SetRecord("synthetic", [SourceRef.of(record)], DIGITS, "pgd", "synthetic",
                                {"eps": 0.0627, "step": 0.0039, "steps": 20}, attempted=n, success_rate=1.0))
    return names


def baseline(ws: Path, names: list[str], device: torch.device, batch_size: int, precision: str = "fp32") -> float:
    models = [prepare(robench.load_model(n, ws), device).eval() for n in names]
    s = store.load_set("synthetic", ws)
    test = load_dataset("digits").test.floats()
    t = time.perf_counter()
    for m in models:
        for images in (test, s.clean, s.adv):
            predict(m, images, batch_size=batch_size, device=device, precision=precision)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def timed_matrix(ws: Path, device: str, batch_size: int, fresh: bool, precision: str = "fp32") -> float:
    if fresh:
        shutil.rmtree(ws / "cache", ignore_errors=True)
    t = time.perf_counter()
    df = matrix(ws, device=device, batch_size=batch_size, precision=precision)
    assert len(df) == 2
    return time.perf_counter() - t


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=2000, help="images in the synthetic set")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--device", default=None)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--precision", default="fp32", help="fp32 (default), bf16 or fp16 predictions, both sides")
    args = p.parse_args()
    device = pick_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "ws"
        names = build(ws, args.n, args.width)
        prec = args.precision
        timed_matrix(ws, str(device), args.batch_size, True, prec)  # warm-up: imports, allocator, dataset
        baseline(ws, names, device, args.batch_size, prec)
        base, cold, warm = [], [], []
        for _ in range(args.repeats):  # interleaved, best of each: robust to a busy machine
            base.append(baseline(ws, names, device, args.batch_size, prec))
            cold.append(timed_matrix(ws, str(device), args.batch_size, True, prec))
            warm.append(timed_matrix(ws, str(device), args.batch_size, False, prec))
    images = len(names) * (360 + 2 * args.n)
    b, c, w = min(base), min(cold), min(warm)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
    print(f"machine: {cpu_name()}, {torch.get_num_threads()} torch threads, "
          f"device {device} {gpu}, torch {torch.__version__}")
    print(f"workload: {len(names)} x resnet18 width {args.width}, 1x32x32, set of {args.n} images "
          f"({images} forward images per pass), batch {args.batch_size}, precision {args.precision}, "
          f"best of {args.repeats}")
    print(f"plain batched inference : {b:7.2f} s  {images / b:8.0f} img/s")
    print(f"matrix (cold cache)     : {c:7.2f} s  {images / c:8.0f} img/s")
    print(f"matrix (warm cache)     : {w:7.2f} s")
    print(f"throughput ratio matrix/plain = {b / c:.2f}x (target >= 0.9x)")


if __name__ == "__main__":
    main()
