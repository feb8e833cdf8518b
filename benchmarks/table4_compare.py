"""Set a Table-4-style matrix CSV beside the papers' Table 4 and record both in RESULTS.md.

The paper's numbers and the comparison live in robench.reports.papers (shipped with robench; `robench report`
shows the same table).

    robench run table4-cpu --workspace table4-cpu
    python benchmarks/table4_compare.py table4-cpu/results/table4-cpu.csv

Rows are targets (architecture x keep), columns the five standard sources; each cell is
"ours / paper" defense rate in %. It also checks the papers' main claim cell by cell: the
defense rate rises as keep falls (1 -> 0.5 -> 0.3).
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

from common import record

from robench.reports.papers import ARCHS, KEEPS, PAPER, means, monotone, ours_frame, paper_frame, side_by_side

__all__ = ["ARCHS", "KEEPS", "PAPER", "means", "monotone", "ours_frame", "paper_frame", "side_by_side"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("csv", type=Path)
    parser.add_argument("--eps", default="16/255", help="which PGD sets of the CSV to compare (their budget)")
    parser.add_argument("--note", default="", help="text to record above the table (the run's settings)")
    args = parser.parse_args()
    ours, paper = ours_frame(args.csv, float(Fraction(args.eps))), paper_frame()
    table = side_by_side(ours, paper)
    m_ours, m_paper = means(ours), means(paper)
    k_ours, k_paper = monotone(ours), monotone(paper)
    white = ours[ours.target_arch.eq(ours.source_arch) & ours.target_keep.eq(1.0)]
    summary = "\n".join([
        "| keep | mean defense, ours | mean defense, paper |",
        "|---|---:|---:|",
        *(f"| {k:g} | {m_ours[k]:.1f} | {m_paper[k]:.1f} |" for k in KEEPS),
    ])
    text = f"""{args.note}

Cells: defense rate in %, **ours (PGD eps {args.eps}) / paper (PGD eps 16/255, CIFAR-10)**; rows are targets,
columns the standard sources (seed 1). The standard target of the source's own architecture is gray-box (same
architecture, other seed), as in the paper.

{table}

{summary}

Defense rate rises strictly at every step 1 -> 0.5 -> 0.3 in {k_ours[0]} of {k_ours[1]} (target, source) pairs here,
and in {k_paper[0]} of {k_paper[1]} in the paper. Gray-box standard cells here: \
{", ".join(f"{r.target_arch} {r.defense:.1f}" for r in white.itertuples())}.
"""
    print(text)
    record(f"Table 4, scaled down (CPU), PGD eps {args.eps}", text)


if __name__ == "__main__":
    main()
