"""How much CPU `robench --help` and a bad-argument error cost, measured on fresh processes.

Each command runs in a new Python process (as a user's shell would start it); its CPU time (user + system, from
the child's rusage) is taken, rounds interleaved with the order rotating. The baseline is a bare interpreter
(`python -c pass`) timed in the same rounds; `import torch` alone is timed as a reference. With ``--before DIR``
the same commands also run against another checkout of robench (e.g. the code before lazy imports), exported
with `git archive`.

    python benchmarks/bench_cli.py --rounds 7 [--before /tmp/robench-before] [--record]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

from common import machine, record

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "robench --help": ["-m", "robench.cli", "--help"],
    "robench --version": ["-m", "robench.cli", "--version"],
    "robench train --help": ["-m", "robench.cli", "train", "--help"],
    "robench attack --help": ["-m", "robench.cli", "attack", "--help"],
    "robench attack -s x -m pgdd (bad choice)": ["-m", "robench.cli", "attack", "-s", "x", "-m", "pgdd"],
    "robench train resnet19 (bad argument)": ["-m", "robench.cli", "train", "resnet19"],
    "robench matrix --nope (unknown option)": ["-m", "robench.cli", "matrix", "--nope"],
}
BASELINES = {"python -c pass (interpreter)": ["-c", "pass"], "python -c 'import torch' (reference)":
             ["-c", "import torch"]}


def cpu_seconds(args: list[str], source: Path) -> float:
    """User + system CPU seconds of one fresh `python ARGS` with robench imported from ``source``."""
    env = {**os.environ, "PYTHONPATH": str(source), "COLUMNS": "100"}
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            cwd=source)
    _, _, usage = os.wait4(proc.pid, 0)
    return usage.ru_utime + usage.ru_stime


def measure(sources: dict[str, Path], rounds: int) -> dict[tuple[str, str], float]:
    """Median CPU seconds per (checkout, command); every round runs everything once, the order rotating."""
    jobs = [(label, name, args) for label, src in sources.items() for name, args in COMMANDS.items()]
    jobs += [("-", name, args) for name, args in BASELINES.items()]
    times: dict[tuple[str, str], list[float]] = {(label, name): [] for label, name, _ in jobs}
    for r in range(rounds + 1):  # round 0 warms the file cache and is not counted
        for label, name, args in jobs[r % len(jobs):] + jobs[:r % len(jobs)]:
            t = cpu_seconds(args, sources.get(label, ROOT))
            if r:
                times[(label, name)].append(t)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--before", type=Path, help="another robench checkout to time the same commands against")
    p.add_argument("--record", action="store_true", help="write the results into docs/benchmarks.md")
    args = p.parse_args()
    sources = {"now": ROOT, **({"before": args.before} if args.before else {})}
    medians = measure(sources, args.rounds)
    base = medians[("-", "python -c pass (interpreter)")]
    rows = []
    for name in COMMANDS:
        before = medians.get(("before", name))
        now = medians[("now", name)]
        rows.append(f"| `{name}` | {now:.2f} | {now - base:.2f} | {'<' if now < 1 else '>='} 1 s |"
                    + (f" {before:.2f} |" if args.before else ""))
    for name in BASELINES:
        rows.append(f"| `{name}` | {medians[('-', name)]:.2f} | | |" + (" |" if args.before else ""))
    head = "| command | CPU s (median) | minus interpreter | target |" + (" before (CPU s) |" if args.before else "")
    rule = "|---|---|---|---|" + ("---|" if args.before else "")
    body = "\n".join([f"Machine: {machine()}.", "", head, rule, *rows, "",
                      f"Median of {args.rounds} interleaved rounds of fresh processes; CPU = user + system time of the "
                      f"child (os.wait4), so other load on the machine does not inflate it.",
                      "Reproduce: `python benchmarks/bench_cli.py --rounds 7 --before DIR --record` (DIR: an older "
                      "checkout, e.g. `git archive <commit> | tar -x -C DIR`)."])
    print(body)
    if args.record:
        record("CLI start-up", body)


if __name__ == "__main__":
    main()
