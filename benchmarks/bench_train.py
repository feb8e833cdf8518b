"""Training speed: defective vs standard train steps, and robench's loop vs a bare PyTorch loop.

    python benchmarks/bench_train.py [--width 16] [--batch 64]

Prints two ratios and records them in benchmarks/RESULTS.md:
- defective/standard ResNet-18 train-step time (target <= 1.03x);
- robench fit() / bare loop throughput on the same model and data (target >= 0.9x).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from common import interleaved, machine, record
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from robench.data import load_dataset
from robench.models import create_model
from robench.runtime import pick_device
from robench.training import Recipe, fit


def train_step_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    def step() -> None:
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def bench_defective(width: int, batch: int, device: torch.device) -> tuple[float, dict]:
    torch.manual_seed(0)
    x, y = torch.rand(batch, 3, 32, 32, device=device), torch.randint(0, 10, (batch,), device=device)
    steps = {
        "standard": train_step_fn(create_model("resnet18", width=width).to(device).train(), x, y),
        "defective": train_step_fn(create_model("resnet18", width=width, keep=0.1).to(device).train(), x, y),
    }
    t = interleaved(steps, repeats=15, warmup=3)
    return t["defective"] / t["standard"], t


def bare_loop(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int, epochs: int,
              device: torch.device) -> None:
    """The baseline: a plain PyTorch training loop with the same optimiser and batches."""
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    loader = DataLoader(TensorDataset(images, labels), batch, shuffle=True)
    model.train()
    for _ in range(epochs):
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


def bench_loop(width: int, batch: int, device: torch.device, epochs: int = 2) -> tuple[float, dict]:
    data = load_dataset("digits")
    recipe = Recipe(epochs=epochs, batch_size=batch, lr=0.05, milestones=[], augment="none")
    images, labels = data.train.floats(), data.train.labels
    tmp = Path(tempfile.mkdtemp())

    def robench_fit() -> None:
        model = create_model("resnet18", width=width, in_channels=1)
        fit(model, data, recipe, seed=0, checkpoint=tmp / "ckpt.safetensors", device=device)

    def bare() -> None:
        bare_loop(create_model("resnet18", width=width, in_channels=1).to(device), images, labels, batch, epochs,
                  device)

    t = interleaved({"robench": robench_fit, "bare": bare}, repeats=3, warmup=0)
    # fit() also evaluates the test split once at the end; count it as part of robench's time.
    return t["bare"] / t["robench"], t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    device = pick_device()
    ratio_d, t_d = bench_defective(args.width, args.batch, device)
    print(f"defective/standard train-step time: {ratio_d:.3f}x  (target <= 1.03x)  {t_d}")
    ratio_l, t_l = bench_loop(args.width, args.batch, device)
    print(f"robench/bare training throughput: {ratio_l:.3f}x  (target >= 0.9x)  {t_l}")
    record("Training", f"""
Machine: {machine()}.

| measurement | ratio | target | times (s, median) |
|---|---|---|---|
| ResNet-18 (width {args.width}) train step, defective keep 0.1 bottom / standard, batch {args.batch}, 32x32x3 \
| {ratio_d:.3f}x | <= 1.03x | defective {t_d['defective']:.4f}, standard {t_d['standard']:.4f} |
| robench `fit()` throughput / bare PyTorch loop, ResNet-18 (width {args.width}) on digits, 2 epochs, \
batch {args.batch} | {ratio_l:.3f}x | >= 0.9x | robench {t_l['robench']:.2f}, bare {t_l['bare']:.2f} |

`fit()` time includes its per-epoch atomic checkpoint and the final test-set evaluation.
Reproduce: `python benchmarks/bench_train.py --width {args.width} --batch {args.batch}`.
""")


if __name__ == "__main__":
    main()
