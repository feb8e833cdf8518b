"""Tidy score frames as text: the tidy rows themselves (csv, json) and the papers' wide layout (markdown, latex).

The matrix stays one tidy DataFrame (see ``robench.scoring.matrix``); these functions only pivot it for display.
csv and json hold the same tidy rows (one record per row, with n and the relation), so ``pd.read_json`` and
``pd.read_csv`` give the same frame; markdown and latex are the layout a paper prints.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from robench.errors import RobenchError

FORMATS = ("csv", "json", "markdown", "latex")
SUFFIXES = {".csv": "csv", ".json": "json", ".md": "markdown", ".markdown": "markdown", ".tex": "latex"}
MARKERS = {"white-box": " [w]", "gray-box": " [g]", "black-box": ""}
MIN_N = 30  # a cell resting on fewer images than this shows its n
LEGEND = ("Cells: defense success rate in %, [w] white-box (target = source), [g] gray-box (same family); "
          "(n=...) rests on fewer than {min_n} images.")
CLEAN = "clean"


def legend(min_n: int = MIN_N, value: str = "defense_rate") -> str:
    """The one-line key to the marked cells."""
    text = LEGEND.format(min_n=min_n)
    names = {"agreement": "transfer agreement", "target_hit_rate": "target hit rate"}
    return text.replace("defense success rate", names[value]) if value in names else text


def ci_legend(df: pd.DataFrame, ci: str) -> str:
    """The key's sentence on the intervals shown (empty for style 'none')."""
    if ci == "none":
        return ""
    method = next((str(m) for m in df.get("ci_method", pd.Series(dtype=object)).dropna() if m != "none"), "wilson")
    level = next(iter(df.get("ci_level", pd.Series(dtype=float)).dropna()), 0.95)
    shown = "±: half the width of" if ci == "pm" else "[low, high]:"
    return f" {shown} the {float(level):.0%} {method} interval of each cell's rate."


def format_for(path: str | os.PathLike | None, fmt: str | None) -> str:
    """The text format to write: ``fmt`` when given, else the path's suffix (.csv .json .md .tex), else csv."""
    if fmt:
        if fmt not in FORMATS:
            raise RobenchError(f"unknown format '{fmt}': choose one of {', '.join(FORMATS)}")
        return fmt
    return SUFFIXES.get(Path(os.fspath(path or "")).suffix.lower(), "csv")


# ---------------------------------------------------------------- tidy rows


def to_json(df: pd.DataFrame) -> str:
    """The tidy rows as a JSON array of records (NaN as null, floats at full precision)."""
    records = df.astype(object).where(df.notna(), None).to_dict(orient="records")
    return json.dumps(records, indent=2, default=_plain) + "\n"


def _plain(value: Any) -> Any:
    """numpy scalars (and anything else with ``item()``) as plain Python values, for json.dumps."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def tidy_text(df: pd.DataFrame, fmt: str) -> str:
    """The tidy rows as csv or json text."""
    if fmt == "csv":
        return df.to_csv(index=False)
    if fmt == "json":
        return to_json(df)
    raise RobenchError(f"tidy rows are written as csv or json, not '{fmt}'")


# ---------------------------------------------------------------- display tables


def cell_text(value: Any, digits: int = 4, missing: str = "n/a") -> str:
    """One value as a table shows it: whole numbers without decimals, others to ``digits`` places (tiny ones in
    ``digits`` significant figures), NaN/None as ``missing``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.{digits}g}" if abs(value) < 1e-3 else f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return str(value)


def latex_escape(text: str) -> str:
    """``text`` with LaTeX's special characters escaped (for captions; cells are escaped by pandas)."""
    special = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
               "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
    return "".join(special.get(ch, ch) for ch in text)


def _numeric_like(column: pd.Series) -> bool:
    """Numbers, or numbers as text with markers ('78.23 [w]', '16/255', 'n/a'): right-aligned."""
    if pd.api.types.is_numeric_dtype(column):
        return True
    text = column.dropna().astype(str)
    return bool(len(text)) and text.str.match(r"^\s*(n/a|[-+]?\d[\d.eE+-]*(/\d+)?)?(\s|$)").all()


def markdown(frame: pd.DataFrame, index: bool = True) -> str:
    """A GitHub pipe table (tabulate), numeric columns right-aligned."""
    align = (["left"] if index else []) + ["right" if _numeric_like(frame[c]) else "left" for c in frame.columns]
    return frame.to_markdown(index=index, colalign=align, disable_numparse=True)


def latex(frame: pd.DataFrame, caption: str, index: bool = True) -> str:
    """A booktabs ``table`` environment: escaped cells and caption, numeric columns right-aligned."""
    spec = ("l" if index else "") + "".join("r" if _numeric_like(frame[c]) else "l" for c in frame.columns)
    text = frame.to_latex(index=index, escape=True, column_format=spec, caption=latex_escape(caption),
                          position="htbp")
    return text.replace("±", r"$\pm$")


def display_text(frame: pd.DataFrame, fmt: str, title: str, index: bool = False) -> str:
    """One displayed table (already pivoted or formatted) as markdown (with a heading) or latex (captioned).

    Numbers are written as the terminal's table shows them (:func:`cell_text`; missing values left blank).
    """
    numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
    frame = frame.astype({c: object for c in numeric})
    for c in numeric:
        frame[c] = frame[c].map(lambda v: cell_text(v, missing=""))
    if fmt == "markdown":
        return f"### {title}\n\n{markdown(frame, index)}\n"
    if fmt == "latex":
        return latex(frame, title, index)
    raise RobenchError(f"a displayed table is written as markdown or latex, not '{fmt}'")


# ---------------------------------------------------------------- the matrix


def column_labels(part: pd.DataFrame) -> pd.Series:
    """Column label per row: the source, or 'source [set]' where one source has several sets of an attack."""
    several = part.groupby("source")["set"].transform("nunique") > 1
    return part["source"].where(~several, part["source"] + " [" + part["set"] + "]")


def wide(df: pd.DataFrame, value: str = "defense_rate", percent: bool = True,
         column: str | None = None) -> dict[str, pd.DataFrame]:
    """One frame per attack configuration: rows targets, a 'clean' accuracy column, then one column per source.

    ``column`` picks another per-cell column to pivot (e.g. ``n``), without the clean column or scaling.
    """
    scale = 100.0 if percent else 1.0
    tables = {}
    for attack, part in df.groupby("attack", sort=False):
        part = part.assign(column=column_labels(part))
        if column is not None:
            table = part.pivot(index="target", columns="column", values=column)
        else:
            table = part.pivot(index="target", columns="column", values=value) * scale
            table.insert(0, CLEAN, part.groupby("target")["target_clean_accuracy"].first() * scale)
        table.columns.name = None
        tables[str(attack)] = table
    return tables


CI_STYLES = ("none", "pm", "interval")
_CI_COLUMNS = {"defense_rate": ("ci_low", "ci_high"), "agreement": ("agreement_ci_low", "agreement_ci_high"),
               "target_hit_rate": ("target_hit_rate_ci_low", "target_hit_rate_ci_high")}


def intervals(df: pd.DataFrame, value: str = "defense_rate") -> pd.DataFrame:
    """``df`` with columns ``value_low`` / ``value_high``: the rate's interval as its rows record it, else (a file
    written before intervals existed, rows scored with ``--ci none``, a rate without interval columns) Wilson's at
    the recorded level (95% when none is recorded)."""
    from robench.stats import CI_LEVEL, rate_ci

    low, high = _CI_COLUMNS.get(value, ("", ""))
    nan = pd.Series(math.nan, index=df.index)
    method = df["ci_method"] if "ci_method" in df.columns else nan
    recorded = method.notna() & (method != "none") & (low in df.columns) & (high in df.columns)
    levels = df["ci_level"].fillna(CI_LEVEL) if "ci_level" in df.columns else nan.fillna(CI_LEVEL)
    lows, highs = df.get(low, nan), df.get(high, nan)
    bounds = [(lo, hi) if rec else rate_ci(v, n, lv) for v, n, lv, rec, lo, hi in
              zip(df[value], df["n"], levels, recorded, lows, highs, strict=True)]
    return df.assign(value_low=[b[0] for b in bounds], value_high=[b[1] for b in bounds])


def ci_text(v: float, low: float, high: float, style: str, digits: int) -> str:
    """' ±3.9' (half the interval's width) or ' [31.1, 39.0]' after a cell, '' for style 'none' or no interval."""
    if style == "none" or low is None or high is None or math.isnan(low) or math.isnan(high):
        return ""
    if style == "pm":
        return f" ±{(high - low) / 2:.{digits}f}"
    return f" [{low:.{digits}f}, {high:.{digits}f}]"


def _cell(v: float, n: float, digits: int, min_n: int, show_n: bool, bounds: tuple[float, float] = (math.nan,
          math.nan), ci: str = "none") -> str:
    if v is None or math.isnan(v):
        return "n/a"  # n = 0
    text = f"{v:.{digits}f}" + ci_text(v, *bounds, ci, digits)
    if not math.isnan(n) and (show_n or n < min_n):
        text += f" (n={int(n)})"
    return text


def marked(df: pd.DataFrame, value: str = "defense_rate", digits: int = 2, min_n: int = MIN_N,
           show_n: bool = False, ci: str = "none") -> dict[str, pd.DataFrame]:
    """Like :func:`wide`, as strings with relation markers ('78.23 [w]'); NaN (n = 0) reads 'n/a'.

    A cell resting on fewer than ``min_n`` images (or every cell, with ``show_n``) shows its n: '100.00 (n=1)'.
    ``ci``: 'pm' adds half the width of the cell's interval ('34.90 ±3.90'), 'interval' the interval itself
    ('34.90 [31.12, 38.92]'), in %.
    """
    if ci not in CI_STYLES:
        raise RobenchError(f"unknown interval style '{ci}': choose one of {', '.join(CI_STYLES)}")
    tables = {}
    counts = wide(df, column="n")
    if ci != "none":
        df = intervals(df, value)
        lows, highs = wide(df, column="value_low"), wide(df, column="value_high")
    for attack, numbers in wide(df, value).items():
        part = df[df["attack"] == attack]
        rel = part.assign(column=column_labels(part)).pivot(index="target", columns="column", values="relation")
        text = numbers.copy().astype(object)
        text[CLEAN] = numbers[CLEAN].map(lambda v: "n/a" if math.isnan(v) else f"{v:.{digits}f}")
        for col in rel.columns:  # a cell with no relation was not scored (skipped): left blank
            n_col = counts[attack][col]
            lo = lows[attack][col] * 100 if ci != "none" else pd.Series(math.nan, index=n_col.index)
            hi = highs[attack][col] * 100 if ci != "none" else pd.Series(math.nan, index=n_col.index)
            cells = [_cell(v, float(n), digits, min_n, show_n, (a, b), ci)
                     for v, n, a, b in zip(numbers[col], n_col, lo, hi, strict=True)]
            text[col] = (pd.Series(cells, index=numbers.index) + rel[col].map(MARKERS)).where(rel[col].notna(), "")
        tables[attack] = text
    return tables


def render(df: pd.DataFrame, fmt: str, value: str = "defense_rate", min_n: int = MIN_N,
           show_n: bool = False, ci: str = "none") -> str:
    """A tidy matrix frame as text: csv/json hold its tidy rows; markdown/latex the papers' wide layout."""
    fmt = format_for(None, fmt)
    if df.empty:
        raise RobenchError("nothing to render: the matrix has no scored cells")
    if fmt in ("csv", "json"):
        return tidy_text(df, fmt)
    name, key = value.replace("_", " "), legend(min_n, value)
    tables = marked(df, value, min_n=min_n, show_n=show_n, ci=ci).items()
    key += ci_legend(df, ci)
    if fmt == "latex":  # a paper's caption carries the key
        return "\n".join(latex(table.reset_index(), f"{attack}: {name} (%). {key}", index=False)
                         for attack, table in tables)
    parts = [display_text(table.reset_index(), fmt, f"{attack}: {name} (%)") for attack, table in tables]
    return "\n".join([*parts, f"{key}\n"])
