"""The papers' published numbers, to set a study beside: the Defective CNN paper's Table 4.

``robench report`` shows a matrix beside Table 4 wherever it holds the Table's cells (PGD sets of budget 16/255
from the standard sources against the standard and defective targets); ``benchmarks/table4_compare.py`` records
the comparison in RESULTS.md.
"""

from __future__ import annotations

import os

import pandas as pd

ARCHS = ["resnet18", "resnet50", "densenet121", "senet18", "vgg19"]
KEEPS = [1.0, 0.5, 0.3]

# Defective CNN paper, Table 4 (CIFAR-10, PGD step 1/255, 20 steps, eps 16/255): defense rate (%) per source in
# ARCHS order, then the target's clean test accuracy (%).
PAPER = {
    ("resnet18", 1.0): [5.98, 0.94, 14.14, 3.32, 26.97, 95.33],
    ("resnet18", 0.5): [53.89, 33.05, 70.38, 57.52, 58.66, 93.39],
    ("resnet18", 0.3): [78.23, 67.64, 86.99, 82.46, 77.57, 91.83],
    ("resnet50", 1.0): [16.61, 0.22, 14.60, 12.26, 42.38, 95.25],
    ("resnet50", 0.5): [51.55, 17.61, 62.69, 53.82, 62.73, 94.43],
    ("resnet50", 0.3): [71.63, 48.03, 80.94, 75.91, 75.72, 93.46],
    ("densenet121", 1.0): [14.53, 0.60, 2.98, 7.79, 31.57, 95.53],
    ("densenet121", 0.5): [35.07, 8.01, 34.21, 30.86, 45.28, 94.34],
    ("densenet121", 0.3): [58.19, 33.86, 62.32, 59.74, 62.09, 92.82],
    ("senet18", 1.0): [6.72, 0.90, 12.29, 2.23, 26.86, 95.09],
    ("senet18", 0.5): [52.95, 30.78, 66.81, 52.49, 57.45, 93.53],
    ("senet18", 0.3): [74.73, 59.42, 84.31, 78.72, 75.04, 92.54],
    ("vgg19", 1.0): [33.46, 14.16, 49.76, 29.98, 21.20, 93.93],
    ("vgg19", 0.5): [72.27, 59.70, 83.50, 77.93, 66.75, 91.73],
    ("vgg19", 0.3): [85.53, 79.20, 91.01, 88.51, 81.92, 90.11],
}


def paper_frame() -> pd.DataFrame:
    """The papers' Table 4 as a tidy frame: target_arch, target_keep, source_arch, defense (%), clean (%)."""
    rows = [
        {"target_arch": arch, "target_keep": keep, "source_arch": src, "defense": vals[i], "clean": vals[-1]}
        for (arch, keep), vals in PAPER.items() for i, src in enumerate(ARCHS)
    ]
    return pd.DataFrame(rows)


def ours_frame(matrix: pd.DataFrame | str | os.PathLike, eps: float = 16 / 255) -> pd.DataFrame:
    """A tidy matrix (a frame or its CSV) reduced to its PGD sets of budget ``eps`` from the Table's standard
    sources against its targets, in the same tidy columns as :func:`paper_frame` (defense and clean in %)."""
    df = matrix if isinstance(matrix, pd.DataFrame) else pd.read_csv(matrix)
    needed = {"target_arch", "target_keep", "method", "eps", "source", "defense_rate", "target_clean_accuracy"}
    if not needed <= set(df.columns):
        return pd.DataFrame(columns=["target_arch", "target_keep", "source_arch", "defense", "clean", "relation", "n"])
    keep = df["target_keep"].isin(KEEPS) & df["target_arch"].isin(ARCHS)
    keep &= ~df["target"].isin(set(df["source"])) if "target" in df else True  # the Table's targets are not sources
    df = df[keep & df["method"].eq("pgd") & (df["eps"] - eps).abs().lt(1e-6)].copy()
    df["source_arch"] = df["source"].str.replace(r"-seed\d+$", "", regex=True)
    df = df[df["source_arch"].isin(ARCHS)]
    df["defense"] = 100 * df["defense_rate"]
    df["clean"] = 100 * df["target_clean_accuracy"]
    return df[["target_arch", "target_keep", "source_arch", "defense", "clean", "relation", "n"]]


def side_by_side_frame(ours: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """One row per target (arch, keep) present in both, cells 'ours / paper' (%, one decimal; '-' where ours
    lacks the source), then the clean accuracies. Several targets of one (arch, keep), e.g. seeds, are averaged."""
    key = ["target_arch", "target_keep", "source_arch"]
    ours = ours.groupby(key, as_index=False)[["defense", "clean"]].mean()
    both = ours.merge(paper, on=key, suffixes=("", "_paper"))
    rows = []
    for arch in ARCHS:
        for keep in KEEPS:
            part = both[(both.target_arch == arch) & (both.target_keep == keep)].set_index("source_arch")
            if part.empty:
                continue
            cells = {f"{s} src": f"{part.at[s, 'defense']:.1f} / {part.at[s, 'defense_paper']:.1f}"
                     if s in part.index else "-" for s in ARCHS}
            clean = f"{part['clean'].iloc[0]:.1f} / {part['clean_paper'].iloc[0]:.1f}"
            rows.append({"target": arch, "keep": f"{keep:g}", **cells, "clean": clean})
    return pd.DataFrame(rows, columns=["target", "keep", *(f"{s} src" for s in ARCHS), "clean"])


def side_by_side(ours: pd.DataFrame, paper: pd.DataFrame) -> str:
    """A markdown table, one row per target, cells 'ours / paper'."""
    frame = side_by_side_frame(ours, paper)
    lines = ["| " + " | ".join(frame.columns) + " |", "|---|---|" + "---:|" * (len(ARCHS) + 1)]
    lines += ["| " + " | ".join(row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def monotone(frame: pd.DataFrame) -> tuple[int, int]:
    """Cells (target arch x source) where the defense rate rises strictly with each drop in keep; and their count."""
    wide = frame.pivot_table(index=["target_arch", "source_arch"], columns="target_keep", values="defense")
    wide = wide.reindex(columns=KEEPS).dropna()  # pairs with all three keeps
    ok = (wide[0.5] > wide[1.0]) & (wide[0.3] > wide[0.5])
    return int(ok.sum()), len(wide)


def means(frame: pd.DataFrame) -> pd.Series:
    """Mean defense rate (%) per keep, over every target architecture and source."""
    return frame.groupby("target_keep")["defense"].mean().reindex(KEEPS)
