"""A whole study on Ray vs the sequential runner: end-to-end wall time of one suite, executor against executor.

    python benchmarks/bench_suite.py                      # CPU: writes "## Suites on Ray (CPU)"
    python benchmarks/bench_suite.py --quick              # a small smoke run; prints, records nothing
    python benchmarks/bench_suite.py --device cuda --packed 1,2,4,8 --trainings 8   # GPU: "## Suites packed on a GPU"

CPU (``--device cpu``): a suite of 4 small trainings (ResNet-18, digits) + 2 attacks (FGSM, PGD) from one of them +
the matrix, run in a fresh workspace by
- the sequential runner, torch on 1 thread;
- the Ray executor with 2 CPUs (2 steps at a time, each on 1 thread): target >= 1.6x faster end to end on a
  2-core machine;
- the Ray executor with 1 CPU (one step at a time): its overhead over the sequential runner, target <= 1.1x.
Each time includes everything `robench run` does (Ray's startup and shutdown too); the rounds are interleaved and
every run's weights are checked to be identical to the sequential run's.

GPU (``--packed``): ``--trainings`` width-16 ResNet-18 trainings (digits, ``--epochs``), one at a time (sequential)
vs packed ``k`` to a GPU by the Ray executor (``--gpus-per-train 1/k``): images/s of the whole study (training
images x epochs x trainings / wall time) for each k, and the best packing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch
from common import machine, record

from robench import store, suites
from robench.suites.ray import RayExecutor, Resources

SUITE = """
[study]
name = "bench"
dataset = "digits"

[train]
preset = "quick"
epochs = {epochs}
width = {width}

[[models]]
arch = "{arch}"
keep = [1.0, 0.5, 0.3]

[[models]]
arch = "{arch}"
seed = 1

[attack]
source = "{arch}-seed1"
n = {n}

[[attacks]]
method = "fgsm"
eps = "16/255"

[[attacks]]
method = "pgd"
eps = "16/255"
step = "2/255"
steps = 10

[matrix]
out = "matrix.csv"
"""

PACKED = """
[study]
name = "packed"
dataset = "digits"

[train]
preset = "quick"
epochs = {epochs}
width = 16

[[models]]
arch = "resnet18"
seed = {seeds}
"""


def timed_run(text: str, executor: suites.Executor | None, device: str) -> tuple[float, dict[str, str]]:
    """Seconds of one run of the suite in a fresh workspace, and the weights hash of every model it made."""
    root = Path(tempfile.mkdtemp(prefix="bench-suite-"))
    try:
        path = root / "suite.toml"
        path.write_text(text)
        suite = suites.load_suite(path, root / "ws")
        started = time.perf_counter()
        report = suites.run(suite, device=device, executor=executor)
        seconds = time.perf_counter() - started
        if not report.ok:
            raise SystemExit(f"the benchmark suite failed:\n{report.frame().to_string()}")
        return seconds, {r.name: r.weights_sha256 for r in store.list_model_records(suite.workspace)}
    finally:
        shutil.rmtree(root, ignore_errors=True)


class TimedRay(RayExecutor):
    """The Ray executor, with the seconds its start (Ray's own start included) and its close (Ray's shutdown) took."""

    def start(self, *args, **kwargs) -> None:
        began = time.perf_counter()
        super().start(*args, **kwargs)
        self.fixed = time.perf_counter() - began

    def close(self) -> None:
        began = time.perf_counter()
        super().close()
        self.fixed += time.perf_counter() - began


def cpu_times(args: argparse.Namespace, epochs: int) -> tuple[dict[str, list[float]], list[float]]:
    """Interleaved rounds of the suite at ``epochs`` epochs: seconds by executor, and Ray's start + stop seconds."""
    text = SUITE.format(epochs=epochs, width=args.width, arch=args.arch, n=args.n)
    runs = {"sequential": lambda: None, "ray, 2 CPUs": lambda: TimedRay(num_cpus=2),
            "ray, 1 CPU": lambda: TimedRay(num_cpus=1)}
    times: dict[str, list[float]] = {k: [] for k in runs}
    fixed: list[float] = []
    reference: dict[str, str] | None = None
    names = list(runs)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            executor = runs[name]()
            seconds, weights = timed_run(text, executor, "cpu")
            reference = reference or weights
            if weights != reference:
                raise SystemExit(f"{name} trained other weights than the first run: not the same study")
            times[name].append(seconds)
            if executor is not None:
                fixed.append(executor.fixed)
            print(f"{epochs} epochs, round {r + 1}: {name}: {seconds:.1f} s", flush=True)
    return times, fixed


def cpu(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)  # the sequential runner's steps on 1 thread, as each 1-CPU Ray task
    tables = []
    for epochs in [int(e) for e in str(args.epochs).split(",")]:
        times, fixed = cpu_times(args, epochs)
        best = {k: min(v) for k, v in times.items()}
        speedup = best["sequential"] / best["ray, 2 CPUs"]
        overhead = best["ray, 1 CPU"] / best["sequential"]
        tables += [
            f"**{epochs} epochs a training** (best of {args.rounds} interleaved rounds):", "",
            "| measurement | ratio | target | times |", "|---|---|---|---|",
            f"| Ray, 2 CPUs (2 steps at a time) / sequential, speed-up end to end | {speedup:.2f}x | >= 1.6x | "
            f"ray {best['ray, 2 CPUs']:.1f} s, sequential {best['sequential']:.1f} s |",
            f"| Ray, 1 CPU / sequential, overhead end to end | {overhead:.2f}x | <= 1.1x | "
            f"ray {best['ray, 1 CPU']:.1f} s, sequential {best['sequential']:.1f} s |",
            f"| Ray's start + stop in those runs (fixed cost per run) | | | {min(fixed):.1f}-{max(fixed):.1f} s |", "",
        ]
    body = "\n".join([
        f"Machine: {machine()}; load average at the end {os.getloadavg()[0]:.1f}.",
        f"Suite: 4 trainings ({args.arch}, width {args.width}, digits: keep 1.0/0.5/0.3 and a seed-1 source), FGSM "
        f"and PGD-10 sets of {args.n} images from the source, the matrix; a fresh workspace per run, each step on 1 "
        f"torch thread, identical weights in every run. Each time is `suites.run` end to end, Ray's start and stop "
        f"included.", "", *tables,
        f"Reproduce: `python benchmarks/bench_suite.py --rounds {args.rounds} --epochs {args.epochs}`.",
    ])
    print(body)
    if not args.quick:
        record("Suites on Ray (CPU)", body)


def packed(args: argparse.Namespace) -> None:
    if not torch.cuda.is_available():
        raise SystemExit("--packed needs a CUDA GPU")
    seeds = list(range(args.trainings))
    epochs = int(args.epochs.split(",")[0])
    text = PACKED.format(epochs=epochs, seeds=seeds)
    images = 1437 * epochs * args.trainings  # digits' training split
    rates = {}
    seconds, _ = timed_run(text, None, "cuda")
    rates["one at a time (sequential)"] = images / seconds
    print(f"sequential: {seconds:.1f} s, {images / seconds:.0f} img/s", flush=True)
    cpus = os.cpu_count() or 1
    for k in [int(v) for v in args.packed.split(",")]:
        per = max(1, cpus // k)
        executor = RayExecutor(resources=Resources(cpus=per, gpus={"train": 1 / k}))
        seconds, _ = timed_run(text, executor, "cuda")
        rates[f"{k} per GPU (Ray, {per} CPUs each)"] = images / seconds
        print(f"{k} per GPU: {seconds:.1f} s, {images / seconds:.0f} img/s", flush=True)
    base = rates["one at a time (sequential)"]
    best = max(rates, key=rates.get)
    rows = [f"| {name} | {rate:.0f} | {rate / base:.2f}x |" for name, rate in rates.items()]
    body = "\n".join([
        f"Machine: {machine()}.",
        f"{args.trainings} ResNet-18 (width 16) trainings on digits (1x32x32), {epochs} epochs each, `quick` "
        f"preset; images/s of the whole study (training images x epochs x trainings / wall time, Ray's startup "
        f"included).", "",
        "| packing | images/s | vs one at a time |", "|---|---|---|", *rows, "",
        f"Best packing: {best}.",
        f"Reproduce: `python benchmarks/bench_suite.py --device cuda --packed {args.packed} "
        f"--trainings {args.trainings} --epochs {epochs}`.",
    ])
    print(body)
    if not args.quick:
        record("Suites packed on a GPU", body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu (executor comparison) or cuda (with --packed)")
    parser.add_argument("--quick", action="store_true", help="a tiny run to check the script; records nothing")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", default="3,10", help="epochs a training; a list runs the comparison at each")
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--n", type=int, default=200, help="images attacked per set")
    parser.add_argument("--packed", default=None, help="GPU: trainings per GPU to try, e.g. 1,2,4,8")
    parser.add_argument("--trainings", type=int, default=8, help="GPU: trainings in the packed study")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.epochs, args.width, args.arch, args.n = 1, "1", 8, "tiny", 32
        args.trainings = min(args.trainings, 4)
    if args.packed:
        packed(args)
    else:
        cpu(args)


if __name__ == "__main__":
    main()
