"""Tidy score frames -> the papers' wide layout (targets x sources, per attack) and text formats.

The matrix stays one tidy DataFrame (see ``robench.scoring.matrix``); these functions only pivot it for display.
"""

from __future__ import annotations

import math

import pandas as pd

from robench.errors import RobenchError

FORMATS = ("csv", "json", "markdown", "latex")
MARKERS = {"white-box": " [w]", "gray-box": " [g]", "black-box": ""}
LEGEND = "Cells: defense success rate in %, [w] white-box (target = source), [g] gray-box (same family)."
CLEAN = "clean"


def column_labels(part: pd.DataFrame) -> pd.Series:
    """Column label per row: the source, or 'source [set]' where one source has several sets of an attack."""
    several = part.groupby("source")["set"].transform("nunique") > 1
    return part["source"].where(~several, part["source"] + " [" + part["set"] + "]")


def wide(df: pd.DataFrame, value: str = "defense_rate", percent: bool = True) -> dict[str, pd.DataFrame]:
    """One frame per attack configuration: rows targets, a 'clean' accuracy column, then one column per source."""
    scale = 100.0 if percent else 1.0
    tables = {}
    for attack, part in df.groupby("attack", sort=False):
        part = part.assign(column=column_labels(part))
        table = part.pivot(index="target", columns="column", values=value) * scale
        table.insert(0, CLEAN, part.groupby("target")["target_clean_accuracy"].first() * scale)
        table.columns.name = None
        tables[str(attack)] = table
    return tables


def marked(df: pd.DataFrame, value: str = "defense_rate", digits: int = 2) -> dict[str, pd.DataFrame]:
    """Like :func:`wide`, as strings with relation markers ('78.23 [w]'); NaN (n = 0) reads 'n/a'."""
    tables = {}
    for attack, numbers in wide(df, value).items():
        part = df[df["attack"] == attack]
        rel = part.assign(column=column_labels(part)).pivot(index="target", columns="column", values="relation")
        text = numbers.map(lambda v: "n/a" if v is None or (isinstance(v, float) and math.isnan(v))
                           else f"{v:.{digits}f}")
        for col in rel.columns:  # a cell with no relation was not scored (skipped): left blank
            text[col] = (text[col] + rel[col].map(MARKERS)).where(rel[col].notna(), "")
        tables[attack] = text
    return tables


def markdown(frame: pd.DataFrame) -> str:
    """A GitHub pipe table (pandas' to_markdown needs the optional 'tabulate'; used when installed, with the
    cells kept as the text they are: tabulate would otherwise read '95.00' as a number and print '95')."""
    try:
        return frame.to_markdown(disable_numparse=True)
    except ImportError:
        pass
    header = [frame.index.name or ""] + [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * len(frame.columns)) + "|"]
    for idx, row in frame.iterrows():
        lines.append("| " + " | ".join([str(idx)] + [str(v) for v in row]) + " |")
    return "\n".join(lines)


def render(df: pd.DataFrame, fmt: str, value: str = "defense_rate") -> str:
    """The wide, paper-style layout of a tidy matrix frame as csv, json, markdown or latex text."""
    if fmt not in FORMATS:
        raise RobenchError(f"unknown format '{fmt}': choose one of {', '.join(FORMATS)}")
    if df.empty:
        raise RobenchError("nothing to render: the matrix has no scored cells")
    if fmt in ("csv", "json"):
        table = pd.concat(wide(df, value), names=["attack"]).reset_index()
        return table.to_csv(index=False) if fmt == "csv" else table.to_json(orient="records", indent=2) + "\n"
    parts = []
    for attack, table in marked(df, value).items():
        if fmt == "markdown":
            parts.append(f"### {attack}\n\n{markdown(table)}\n")
        else:
            parts.append(table.to_latex(caption=f"{attack}. {LEGEND}", escape=True))
    if fmt == "markdown":
        parts.append(f"{LEGEND}\n")
    return "\n".join(parts)
