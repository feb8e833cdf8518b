"""Shared benchmark plumbing: timing, machine description, and recording into docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
import re
import statistics
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"  # the documentation's Benchmarks page


def machine() -> str:
    """One line describing where the numbers were taken."""
    cpu = platform.processor() or platform.machine()
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return (f"{os.cpu_count()} CPU cores ({cpu}), {gpu}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, Python {platform.python_version()}, {date.today()}")


def timeit(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn`` in seconds (CUDA-synchronised)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def interleaved(fns: dict[str, Callable[[], object]], repeats: int = 5, warmup: int = 1) -> dict[str, float]:
    """Median time of each function, run in alternation so machine noise hits all of them alike."""
    return {k: statistics.median(v) for k, v in interleaved_times(fns, repeats, warmup).items()}


def interleaved_times(fns: dict[str, Callable[[], object]], repeats: int = 5, warmup: int = 1) -> dict[str, list]:
    """Every round's time of each function (seconds), run in alternation.

    The order rotates every round, so no function always runs right after the same other one.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for r in range(repeats):
        for k in names[r % len(names):] + names[:r % len(names)]:
            sync()
            t0 = time.perf_counter()
            fns[k]()
            sync()
            times[k].append(time.perf_counter() - t0)
    return times


def paired_ratio(times: dict[str, list], over: str, base: str) -> float:
    """Median over rounds of time[over] / time[base] within the same round (pairing cancels slow drifts)."""
    return statistics.median(a / b for a, b in zip(times[over], times[base], strict=True))


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def record(section: str, body: str) -> None:
    """Replace (or append) the ``## section`` of docs/benchmarks.md with ``body``, keeping other sections."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    block = f"## {section}\n\n{body.strip()}\n\n"
    pattern = re.compile(rf"^## {re.escape(section)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block
    RESULTS.write_text(text.rstrip() + "\n")
