"""Estimate the wall time of the full Table 4 study from short timing runs (see docs/benchmarks.md, "Table 4 on a GPU").

    python benchmarks/table4_estimate.py --fast t4-fast --paper t4-paper [--matrix-s 95]

Each workspace holds a reduced run of `suites/table4.toml` (every model trained for a few epochs with the named
preset; the attacks and the matrix as in the full study). Per model, the median epoch time (the first epoch left
out when there are more: it pays for cuDNN autotuning and compilation) times the preset's full epoch count is its
training estimate; the attacks' recorded wall times and the matrix time (``--matrix-s``, printed by
``robench run``) are added as measured. Prints one markdown row per preset.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from robench import store
from robench.records import ModelRecord
from robench.training import preset


def epoch_seconds(record: ModelRecord) -> float:
    """Median seconds per epoch of a (reduced) training run, its first epoch left out when there are more."""
    seconds = [h.seconds for h in record.history]
    return statistics.median(seconds[1:] if len(seconds) > 1 else seconds)


def estimate(workspace: str | Path, matrix_s: float = 0.0) -> dict:
    """Training, attack and total hours of the full study, from a reduced run in ``workspace``."""
    models = store.list_model_records(workspace)
    if not models:
        raise SystemExit(f"no models in {workspace}: run the reduced suite there first")
    train_s = sum(epoch_seconds(r) * preset(r.preset or "paper", r.dataset.name).epochs for r in models)
    attack_s = sum(s.wall_time_s or 0.0 for s in store.list_set_records(workspace))
    presets = sorted({r.preset or "paper" for r in models})
    return {"preset": "+".join(presets), "models": len(models), "train_h": train_s / 3600,
            "attack_h": attack_s / 3600, "total_h": (train_s + attack_s + matrix_s) / 3600}


def row(e: dict) -> str:
    return (f"| {e['preset']} | {e['models']} | {e['train_h']:.2f} | {e['attack_h']:.2f} | {e['total_h']:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", help="workspace of the reduced fast-preset run (models, sets)")
    parser.add_argument("--paper", help="workspace of the reduced paper-preset run (models)")
    parser.add_argument("--matrix-s", type=float, default=0.0, help="seconds of the matrix step")
    args = parser.parse_args()
    attack_h = 0.0
    print("| preset | models | training (h) | attacks (h) | total (h) |\n|---|---:|---:|---:|---:|")
    if args.fast:
        fast = estimate(args.fast, args.matrix_s)
        attack_h = fast["attack_h"]
        print(row(fast))
    if args.paper:
        paper = estimate(args.paper, args.matrix_s)
        if args.fast:  # the attacks do not depend on the preset: take them from the fuller run
            paper["total_h"] += attack_h - paper["attack_h"]
            paper["attack_h"] = attack_h
        print(row(paper))


if __name__ == "__main__":
    main()
