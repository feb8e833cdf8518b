"""Set a Table-4-style matrix CSV beside the papers' Table 4 and record both in docs/benchmarks.md.

    robench run benchmarks/suites/table4-cpu.toml --workspace table4-cpu
    python benchmarks/table4_compare.py table4-cpu/results/table4-cpu.csv

Rows are targets (architecture x keep), columns the five standard sources; each cell is
"ours [95% interval] / paper" defense rate in %, marked `in` where the paper's value lies inside our interval and
`out` where it does not. The interval is the one the CSV's rows carry (`ci_low`/`ci_high`, `robench matrix --ci`),
or a 95% Wilson interval from the row's rate and n for CSVs written before intervals existed. It accounts for our
sampling error only (the paper reports no uncertainty). It also checks the papers' main claim cell by cell: the
defense rate rises as keep falls (1 -> 0.5 -> 0.3).
"""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import pandas as pd
from common import record

from robench.reports.papers import ARCHS, KEEPS, PAPER, paper_frame
from robench.stats import rate_ci

__all__ = ["ARCHS", "KEEPS", "PAPER", "paper_frame"]  # the paper's Table 4 ships with robench

def ours_frame(csv: Path, eps: float = 16 / 255) -> pd.DataFrame:
    """Our matrix CSV's PGD sets of budget ``eps``, reduced to the same tidy columns (defense and clean in %)."""
    df = pd.read_csv(csv)
    keep = df["target_keep"].isin(KEEPS) & df["target_arch"].isin(ARCHS)
    df = df[keep & df["method"].eq("pgd") & (df["eps"] - eps).abs().lt(1e-6)].copy()
    df["source_arch"] = df["source"].str.replace(r"-seed\d+$", "", regex=True)
    df = df[df["source_arch"].isin(ARCHS)]
    df["defense"] = 100 * df["defense_rate"]
    df["clean"] = 100 * df["target_clean_accuracy"]
    recorded = df[["ci_low", "ci_high"]].notna().all(axis=1) if {"ci_low", "ci_high"} <= set(df.columns) \
        else pd.Series(False, index=df.index)
    wilson = [rate_ci(r, n) for r, n in zip(df["defense_rate"], df["n"], strict=True)]
    df["low"] = [100 * (row.ci_low if rec else w[0]) for row, rec, w in zip(df.itertuples(), recorded, wilson,
                                                                             strict=True)]
    df["high"] = [100 * (row.ci_high if rec else w[1]) for row, rec, w in zip(df.itertuples(), recorded, wilson,
                                                                               strict=True)]
    return df[["target_arch", "target_keep", "source_arch", "defense", "low", "high", "clean", "relation", "n"]]


def matched(ours: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Our cells beside the paper's (suffix ``_paper``), with ``inside``: the paper's value lies in our interval."""
    both = ours.merge(paper, on=["target_arch", "target_keep", "source_arch"], suffixes=("", "_paper"))
    both["inside"] = (both["low"] <= both["defense_paper"]) & (both["defense_paper"] <= both["high"])
    return both


def inside(ours: pd.DataFrame, paper: pd.DataFrame) -> tuple[int, int]:
    """Cells whose paper value lies inside our interval; and the cells compared."""
    both = matched(ours, paper)
    return int(both["inside"].sum()), len(both)


def side_by_side(ours: pd.DataFrame, paper: pd.DataFrame) -> str:
    """A markdown table, one row per target, cells 'ours [low, high] / paper in|out'."""
    both = matched(ours, paper)
    lines = ["| target | keep | " + " | ".join(f"{a} src" for a in ARCHS) + " | clean |",
             "|---|---|" + "---:|" * (len(ARCHS) + 1)]
    for arch in ARCHS:
        for keep in KEEPS:
            rows = both[(both.target_arch == arch) & (both.target_keep == keep)].set_index("source_arch")
            if rows.empty:
                continue
            cells = [
                f"{rows.at[s, 'defense']:.1f} [{rows.at[s, 'low']:.1f}, {rows.at[s, 'high']:.1f}] / "
                f"{rows.at[s, 'defense_paper']:.1f} {'in' if rows.at[s, 'inside'] else 'out'}"
                if s in rows.index else "-" for s in ARCHS
            ]
            clean = f"{rows['clean'].iloc[0]:.1f} / {rows['clean_paper'].iloc[0]:.1f}"
            lines.append(f"| {arch} | {keep:g} | " + " | ".join(cells) + f" | {clean} |")
    return "\n".join(lines)


def monotone(frame: pd.DataFrame) -> tuple[int, int]:
    """Cells (target arch x source) where the defense rate rises strictly with each drop in keep; and their count."""
    wide = frame.pivot_table(index=["target_arch", "source_arch"], columns="target_keep", values="defense")
    wide = wide.dropna()
    ok = (wide[0.5] > wide[1.0]) & (wide[0.3] > wide[0.5])
    return int(ok.sum()), len(wide)


def means(frame: pd.DataFrame) -> pd.Series:
    """Mean defense rate (%) per keep, over every target architecture and source."""
    return frame.groupby("target_keep")["defense"].mean().reindex(KEEPS)


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
    hits, compared = inside(ours, paper)
    white = ours[ours.target_arch.eq(ours.source_arch) & ours.target_keep.eq(1.0)]
    summary = "\n".join([
        "| keep | mean defense, ours | mean defense, paper |",
        "|---|---:|---:|",
        *(f"| {k:g} | {m_ours[k]:.1f} | {m_paper[k]:.1f} |" for k in KEEPS),
    ])
    text = f"""{args.note}

Cells: defense rate in %, **ours (PGD eps {args.eps}) [our 95% interval] / paper (PGD eps 16/255, CIFAR-10)**,
`in` where the paper's value lies inside our interval; rows are targets, columns the standard sources (seed 1).
The paper's value lies inside our interval in {hits} of {compared} cells (the interval is our sampling error
alone; a scaled-down run is not expected to reproduce the paper's numbers).
The standard target of the source's own architecture is gray-box (same
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
