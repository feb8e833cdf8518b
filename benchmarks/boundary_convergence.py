"""Where does the Boundary score stop moving? One long run per model, the median traced at every doubling of steps.

Run:  python benchmarks/boundary_convergence.py --workspace WS [--models a,b] [--n 16] [--steps 25000]

For each model: the first --n test images it classifies correctly, one Boundary attack of --steps steps
(robench's adapter: Foolbox's BoundaryAttack from blended uniform noise, batched), and the score
(median over examples of ||delta||_2^2 / pixels) at steps, steps/2, steps/4, ... from the same run. Prints a
markdown table (one column per model, and the ratio of the last model's median to the first's) and the
wall time per image; --record writes it to docs/benchmarks.md (section "Boundary convergence").
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from common import machine, record

from robench import store
from robench.attacks.convergence import checkpoints, trace
from robench.attacks.generate import perturb_output
from robench.datasets import resolve_dataset
from robench.models import load_model


def run(name: str, workspace: str, n: int, steps: int, data_dir: str | None) -> tuple[list[float], int, float, float]:
    """The traced medians (one per checkpoint), the number of examples, wall and CPU seconds per image."""
    rec = store.read_model(name, workspace)
    model = load_model(name, workspace, "cpu").eval()
    test = resolve_dataset(rec.dataset, data_dir).test
    with torch.no_grad():
        x, y = test.floats(torch.arange(min(len(test), 8 * n))), test.labels[: 8 * n]
        right = (model(x).argmax(1) == y).nonzero().flatten()[:n]
    x, y = x[right], y[right]
    t0, c0 = time.perf_counter(), time.process_time()
    out = perturb_output(model, x, y, "boundary", seed=0, steps=steps)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    fooled = (model(out.adv).argmax(1) != y).cpu()
    tr = trace(out.extra.l2_trace[fooled].cpu(), checkpoints(steps), x[0].numel(), 0.05)
    return tr.median, tr.n, seconds / len(x), cpu / len(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--models", default=None, help="comma-separated (default: every model in the workspace)")
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--steps", type=int, default=25000)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--record", action="store_true", help="write the table into docs/benchmarks.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = args.models.split(",") if args.models else store.list_model_names(args.workspace)
    results = {}
    for name in names:
        results[name] = run(name, args.workspace, args.n, args.steps, args.data_dir)
        medians = ", ".join(f"{s}: {m:.3e}" for s, m in zip(checkpoints(args.steps), results[name][0], strict=True))
        print(f"{name}: n={results[name][1]}, {results[name][2]:.2f} s/image wall, {results[name][3]:.2f} s/image CPU; "
              f"medians {medians}", flush=True)
    steps = checkpoints(args.steps)
    header = "| steps | " + " | ".join(f"{n} median" for n in names) + (" | ratio |" if len(names) > 1 else " |")
    lines = [header, "|" + "---:|" * (len(names) + 1 + (len(names) > 1))]
    for k, s in enumerate(steps):
        medians = [results[n][0][k] for n in names]
        ratio = f" | {medians[-1] / medians[0]:.2f}x" if len(names) > 1 else ""
        lines.append(f"| {s} | " + " | ".join(f"{m:.2e}" for m in medians) + ratio + " |")
    table = "\n".join(lines)
    per_image = ", ".join(f"{n}: {results[n][2]:.1f} s/image wall, {results[n][3]:.1f} s/image CPU (n={results[n][1]})"
                          for n in names)
    body = (f"Machine: {machine()}.\n\n{table}\n\nCPU time of the whole {args.steps}-step run, batch of {args.n}: "
            f"{per_image}.\nReproduce: `python benchmarks/boundary_convergence.py --workspace WS --n {args.n} "
            f"--steps {args.steps} --threads {args.threads}`.")
    print(body)
    if args.record:
        record("Boundary convergence", body)


if __name__ == "__main__":
    main()
