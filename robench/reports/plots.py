"""Figures with matplotlib's Agg canvas (no display, no global pyplot state).

Each function takes a tidy frame (or tensors) and a target, writes the figure and returns where it went. The
target is a path, whose suffix picks the format (.png, .svg, .pdf, .eps; a name without one gets .png), or a
binary file object (then ``fmt`` says the format). Figures are sized from their labels and saved with a tight
bounding box, so no label or title is cut off.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import torch
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from robench.errors import RobenchError, UsageError
from robench.files import atomic_path
from robench.records import TrainingHistory
from robench.reports.labels import short_titles
from robench.reports.tables import CLEAN, MARKERS, MIN_N, ci_text, column_labels, intervals, wide

PLOT_FORMATS = ("png", "svg", "pdf", "eps")
DPI = 150
FONT = 8  # points
Target = str | os.PathLike | IO[bytes]


def plot_path(path: str | os.PathLike, fmt: str | None = None) -> Path:
    """Where a figure goes: ``path`` when its suffix is a figure format, else ``path`` + '.' + ``fmt`` (png).

    A ``fmt`` that contradicts the suffix, or an unknown ``fmt``, is a RobenchError.
    """
    path = Path(path)
    suffix = path.suffix.lower().lstrip(".")
    if fmt is not None and fmt not in PLOT_FORMATS:
        raise UsageError(f"unknown figure format '{fmt}': choose one of {', '.join(PLOT_FORMATS)}")
    if suffix in PLOT_FORMATS:
        if fmt is not None and fmt != suffix:
            raise UsageError(f"--format {fmt} contradicts the file name {path.name}; drop one of them")
        return path
    return path.with_name(f"{path.name}.{fmt or 'png'}")


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, target: Target, fmt: str | None = None, dpi: int = DPI) -> Path | IO[bytes]:
    """Write ``fig`` to a path (atomically; format from the suffix, see :func:`plot_path`) or a binary stream."""
    if dpi <= 0:
        raise RobenchError(f"--dpi must be a positive number, got {dpi}")
    options = {"dpi": dpi, "bbox_inches": "tight", "pad_inches": 0.05, "metadata": _metadata(fmt, target)}
    if hasattr(target, "write"):
        fig.savefig(target, format=fmt or "png", **options)
        return target
    path = plot_path(target, fmt)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip("."), **options)
    return path


def _metadata(fmt: str | None, target: Target) -> dict[str, Any] | None:
    """No creation date in PDFs and SVGs and no software version in PNGs, so the same figure gives the same
    bytes (across matplotlib versions too, for PNG)."""
    kind = fmt or ("png" if hasattr(target, "write") else plot_path(target).suffix.lstrip("."))
    return {"CreationDate": None} if kind == "pdf" else {"Date": None} if kind == "svg" else \
        {"Software": None} if kind == "png" else None


def _text_width(labels: list[str], size: float = FONT) -> float:
    """Approximate width in inches of the longest label at ``size`` points."""
    return max((len(s) for s in labels), default=0) * size * 0.6 / 72


# ---------------------------------------------------------------- the matrix


def attack_configs(df: pd.DataFrame, attacks: list[str]) -> list[tuple[str, dict]]:
    """(method, params) of each attack configuration, from the tidy frame's method and params (JSON) columns."""
    configs = []
    for attack in attacks:
        row = df[df["attack"] == attack].iloc[0]
        try:
            params = json.loads(row["params"]) if isinstance(row.get("params"), str) else None
        except json.JSONDecodeError:
            params = None
        configs.append((str(row["method"]), params) if params is not None else (attack, {}))
    return configs


def heatmap_figure(df: pd.DataFrame, value: str = "defense_rate", *, min_n: int = MIN_N,
                   show_n: bool = False, ci: str = "none") -> Figure:
    """The matrix as heatmaps (one panel per attack configuration): targets x sources, cells in %.

    A cell resting on fewer than ``min_n`` images is greyed and shows its n (every cell shows n with ``show_n``).
    ``ci`` ('pm' or 'interval') writes each cell's interval under its value (see ``tables.marked``).
    """
    if df.empty:
        raise RobenchError("nothing to plot: the matrix has no scored cells")
    if ci != "none":
        df = intervals(df, value)
    tables, counts = wide(df, value), wide(df, column="n")
    titles = short_titles(attack_configs(df, list(tables)))
    rows = [f"{t} ({c:.1f}%)" for table in tables.values() for t, c in zip(table.index, table[CLEAN], strict=True)]
    cols = [str(c) for table in tables.values() for c in table.columns[1:]]
    ncols = max(t.shape[1] - 1 for t in tables.values())
    cell = max(0.75, _text_width(["100.0 [w]"]) + 0.15)
    width = _text_width(rows) + ncols * cell + 1.6
    height = sum(0.32 * len(t) + 0.6 for t in tables.values()) + _text_width(cols) * 0.7 + 0.4
    fig = _figure(max(width, _text_width(titles, FONT + 1) + 1.0, 3.5), max(height, 2.0))
    axes = fig.subplots(len(tables), 1, squeeze=False)[:, 0]
    limits = colour_range(df, value, min_n)
    for ax, title, (attack, table) in zip(axes, titles, tables.items(), strict=True):
        _panel(ax, df, attack, table, counts[attack], value, min_n, show_n, limits, ci)
        ax.set_title(title, fontsize=FONT + 1)
    return fig



def colour_range(df: pd.DataFrame, value: str = "defense_rate", min_n: int = MIN_N) -> tuple[float, float]:
    """The heatmaps' colour range in %: the span of the transfer cells (black- and gray-box, n >= min_n), widened
    to whole tens and at least 20 points. White-box cells (a model attacked directly, ~0% defended) do not set it:
    they would squeeze every transfer cell into the top of the scale; cells outside it take its end colours."""
    cells = df[(df["relation"] != "white-box") & (df["n"] >= min_n)][value].dropna() * 100
    if cells.empty:
        return 0.0, 100.0
    low, high = math.floor(cells.min() / 10) * 10, math.ceil(cells.max() / 10) * 10
    if high - low < 20:  # widen around the middle, staying within [0, 100]
        low = min(max((low + high) / 2 - 10, 0), 80)
        high = low + 20
    return float(low), float(high)


def _panel(ax, df: pd.DataFrame, attack: str, table: pd.DataFrame, counts: pd.DataFrame, value: str,
           min_n: int, show_n: bool, limits: tuple[float, float] = (0.0, 100.0), ci: str = "none") -> None:
    """One attack configuration's heatmap: colours by value within ``limits`` (%); greyed, with n, where
    n < min_n."""
    values = table.drop(columns=CLEAN).to_numpy(dtype=float)
    n = counts.reindex(index=table.index, columns=table.columns[1:]).to_numpy(dtype=float)
    small = ~np.isnan(n) & (n < min_n)
    cmap = colormaps["viridis"].with_extremes(bad="0.85")  # greyed: masked (small n) and NaN (n = 0) cells
    image = ax.imshow(np.ma.masked_where(small, values), vmin=limits[0], vmax=limits[1], cmap=cmap, aspect="auto")
    part = df[df["attack"] == attack]
    cells = part.assign(column=column_labels(part)).set_index(["target", "column"])
    relation = cells["relation"].to_dict()
    bounds = cells[["value_low", "value_high"]].mul(100).apply(tuple, axis=1).to_dict() if ci != "none" else {}
    for i, target in enumerate(table.index):
        for j, source in enumerate(table.columns[1:]):
            v = values[i, j]
            text = "n/a" if math.isnan(v) else f"{v:.1f}{MARKERS.get(relation.get((target, source), ''), '')}"
            extra = ci_text(v, *bounds.get((target, source), (math.nan, math.nan)), ci, 1).strip()
            text += f"\n{extra}" if extra and not math.isnan(v) else ""
            if not math.isnan(n[i, j]) and not math.isnan(v) and (show_n or small[i, j]):
                text += f"\nn={int(n[i, j])}"
            dark = not small[i, j] and not math.isnan(v) and v < limits[0] + 0.6 * (limits[1] - limits[0])
            ax.text(j, i, text, ha="center", va="center", fontsize=FONT - 1,
                    color="white" if dark else "0.35" if small[i, j] else "black")
    ax.set_xticks(range(values.shape[1]), [str(c) for c in table.columns[1:]], rotation=30, ha="right",
                  fontsize=FONT)
    ax.set_yticks(range(len(table)), [f"{t} ({c:.1f}%)" for t, c in zip(table.index, table[CLEAN], strict=True)],
                  fontsize=FONT)
    ax.set_xlabel("source", fontsize=FONT)
    ax.set_ylabel("target (clean accuracy)", fontsize=FONT)
    extend = {(True, True): "both", (True, False): "min", (False, True): "max"}.get(
        (limits[0] > 0, limits[1] < 100), "neither")
    bar = ax.figure.colorbar(image, ax=ax, extend=extend)
    bar.set_label(f"{value.replace('_', ' ')} (%)", fontsize=FONT)
    bar.ax.tick_params(labelsize=FONT)


def heatmap(df: pd.DataFrame, target: Target, value: str = "defense_rate", *, fmt: str | None = None,
            dpi: int = DPI, min_n: int = MIN_N, show_n: bool = False, ci: str = "none") -> Path | IO[bytes]:
    """Draw :func:`heatmap_figure` and write it (see :func:`save`)."""
    return save(heatmap_figure(df, value, min_n=min_n, show_n=show_n, ci=ci), target, fmt, dpi)


# ---------------------------------------------------------------- curves


def curves_figure(df: pd.DataFrame, x: str, y: str = "accuracy", hue: str = "model", xlabel: str | None = None,
                  title: str | None = None) -> Figure:
    """One line per ``hue`` value: ``y`` (a fraction, drawn in %) against ``x``."""
    if df.empty:
        raise RobenchError("nothing to plot: the score table is empty")
    labels = [str(v) for v in df[hue].unique()]
    fig = _figure(5.0 + _text_width(labels), 3.6)
    ax = fig.subplots()
    for label, part in df.groupby(hue, sort=False):
        part = part.sort_values(x)
        ax.plot(part[x], part[y] * 100, marker="o", label=str(label))
    ax.set_xlabel(xlabel or x, fontsize=FONT + 1)
    ax.set_ylabel(f"{y.replace('_', ' ')} (%)", fontsize=FONT + 1)
    ax.set_ylim(0, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=FONT, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    if title:
        ax.set_title(title, fontsize=FONT + 1)
    return fig


def curves(df: pd.DataFrame, target: Target, x: str, y: str = "accuracy", hue: str = "model",
           xlabel: str | None = None, title: str | None = None, *, fmt: str | None = None,
           dpi: int = DPI) -> Path | IO[bytes]:
    """Draw :func:`curves_figure` and write it (see :func:`save`)."""
    return save(curves_figure(df, x, y, hue, xlabel, title), target, fmt, dpi)


def _images_title(df: pd.DataFrame) -> str:
    return f" on {int(df['n'].iloc[0])} images" if "n" in df and len(df) else ""


def noise_plot(df: pd.DataFrame, target: Target, *, fmt: str | None = None, dpi: int = DPI) -> Path | IO[bytes]:
    """Accuracy against Gaussian-noise sigma, one line per model (frame of ``noise_curve``)."""
    return curves(df, target, "sigma", xlabel="noise σ (images in [0, 1])",
                  title=f"Gaussian noise{_images_title(df)}", fmt=fmt, dpi=dpi)


def shuffle_plot(df: pd.DataFrame, target: Target, *, fmt: str | None = None, dpi: int = DPI) -> Path | IO[bytes]:
    """Accuracy against patch-grid size k, one line per model (frame of ``shuffle_curve``)."""
    return curves(df, target, "k", xlabel="k (k×k patches shuffled)", title=f"Patch shuffle{_images_title(df)}",
                  fmt=fmt, dpi=dpi)


def tradeoff_figure(df: pd.DataFrame, title: str | None = None) -> Figure:
    """Defense rate and clean accuracy against keep probability (frame of ``tradeoff``)."""
    if df.empty:
        raise RobenchError("nothing to plot: the trade-off table is empty")
    part = df.sort_values("keep")
    fig = _figure(5.0, 3.6)
    ax = fig.subplots()
    ax.plot(part["keep"], part["defense_rate"] * 100, marker="o", label="defense rate")
    ax.plot(part["keep"], part["clean_accuracy"] * 100, marker="s", label="clean accuracy")
    ax.set_xlabel("keep probability", fontsize=FONT + 1)
    ax.set_ylabel("%", fontsize=FONT + 1)
    ax.set_ylim(0, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=FONT)
    ax.set_title(title or "keep trade-off", fontsize=FONT + 1)
    return fig


def tradeoff_plot(df: pd.DataFrame, target: Target, title: str | None = None, *, fmt: str | None = None,
                  dpi: int = DPI) -> Path | IO[bytes]:
    """Draw :func:`tradeoff_figure` and write it (see :func:`save`)."""
    return save(tradeoff_figure(df, title), target, fmt, dpi)


# ---------------------------------------------------------------- training


def training_figure(history: TrainingHistory, title: str | None = None, clean_accuracy: float | None = None,
                    classes: int | None = None) -> Figure:
    """A model's training curves from its record's history: training loss (left) and training accuracy (right,
    with the final test accuracy and chance, 1/classes, as dashed lines) per epoch."""
    epochs = [e.epoch for e in history]
    if not epochs:
        raise RobenchError("nothing to plot: the model has no training history")
    fig = _figure(6.4, 2.6)
    loss_ax, acc_ax = fig.subplots(1, 2)
    loss_ax.plot(epochs, [e.train_loss for e in history], marker="o", markersize=3)
    loss_ax.set_ylabel("training loss", fontsize=FONT)
    acc_ax.plot(epochs, [100 * e.train_accuracy for e in history], marker="o", markersize=3,
                label="training (running, augmented)")
    if clean_accuracy is not None and not math.isnan(clean_accuracy):
        acc_ax.axhline(100 * clean_accuracy, color="C1", linestyle="--", label=f"test {100 * clean_accuracy:.1f}%")
    if classes:
        acc_ax.axhline(100 / classes, color="0.5", linestyle=":", label="chance")
    acc_ax.set_ylabel("accuracy (%)", fontsize=FONT)
    acc_ax.set_ylim(0, 102)
    acc_ax.legend(fontsize=FONT - 1, loc="lower right")
    for ax in (loss_ax, acc_ax):
        ax.set_xlabel("epoch", fontsize=FONT)
        ax.tick_params(labelsize=FONT)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=FONT + 1)
    return fig


def training_plot(history: TrainingHistory, target: Target, title: str | None = None,
                  clean_accuracy: float | None = None, classes: int | None = None, *, fmt: str | None = None,
                  dpi: int = DPI) -> Path | IO[bytes]:
    """Draw :func:`training_figure` and write it (see :func:`save`)."""
    return save(training_figure(history, title, clean_accuracy, classes), target, fmt, dpi)


# ---------------------------------------------------------------- folder scores


def folder_figure(df: pd.DataFrame, title: str | None = None) -> Figure:
    """Accuracy on a test-only folder beside clean accuracy, one pair of bars per model (frame of
    ``folder_scores``)."""
    if df.empty:
        raise RobenchError("nothing to plot: the folder score table is empty")
    labels = [str(m) for m in df["model"]]
    fig = _figure(max(5.0, 0.9 * len(df) + 2), 3.6 + 0.5 * _text_width(labels))
    ax = fig.subplots()
    x = range(len(df))
    folder = Path(str(df["folder"].iloc[0])).name if "folder" in df else "folder"
    ax.bar([i - 0.2 for i in x], df["clean_accuracy"].astype(float) * 100, 0.4, label="own test split")
    ax.bar([i + 0.2 for i in x], df["accuracy"].astype(float) * 100, 0.4, label=folder)
    ax.set_xticks(list(x), labels, rotation=30, ha="right", fontsize=FONT)
    ax.set_ylabel("accuracy (%)", fontsize=FONT + 1)
    ax.set_ylim(0, 102)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=FONT)
    ax.set_title(title or f"accuracy on {folder}", fontsize=FONT + 1)
    return fig


def folder_plot(df: pd.DataFrame, target: Target, title: str | None = None, *, fmt: str | None = None,
                dpi: int = DPI) -> Path | IO[bytes]:
    """Draw :func:`folder_figure` and write it (see :func:`save`)."""
    return save(folder_figure(df, title), target, fmt, dpi)


# ---------------------------------------------------------------- examples


def _show(ax, image: torch.Tensor, title: str) -> None:
    """Draw one (C, H, W) image in [0,1]: grayscale for one channel."""
    img = image.detach().float().clamp(0, 1).cpu()
    if img.shape[0] == 1:
        ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(img.permute(1, 2, 0).numpy())
    ax.set_title(title, fontsize=FONT - 1)
    ax.axis("off")


def pick(total: int, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` (at most ``total``) seeded picks of the indices 0..total-1, in increasing order."""
    return torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:n].sort().values


def examples_figure(clean: torch.Tensor, adv: torch.Tensor, labels: torch.Tensor, adv_pred: torch.Tensor,
                    clean_pred: torch.Tensor | None = None, title: str | None = None,
                    classes: list[str] | None = None) -> Figure:
    """Clean (top row) vs adversarial (middle) with true/predicted labels (class names when given), and the
    perturbation (bottom, rescaled). Images (n, C, H, W) in [0,1]; labels and predictions (n,)."""
    n = len(labels)
    if n == 0:
        raise RobenchError("nothing to plot: the set is empty")

    def name(i: torch.Tensor) -> str:
        return classes[int(i)] if classes and 0 <= int(i) < len(classes) else str(int(i))

    names = [name(i) for i in labels] + [name(i) for i in adv_pred]
    column = max(1.3, _text_width([f"adv pred {s}" for s in names], FONT - 1) + 0.2)
    fig = _figure(max(3.0, column * n), 4.6)
    axes = fig.subplots(3, n, squeeze=False)
    for i in range(n):
        pred = f"\npred {name(clean_pred[i])}" if clean_pred is not None else ""
        _show(axes[0, i], clean[i], f"true {name(labels[i])}{pred}")
        _show(axes[1, i], adv[i], f"adv pred {name(adv_pred[i])}")
        delta = adv[i] - clean[i]
        scale = float(delta.abs().max()) or 1.0
        _show(axes[2, i], delta / (2 * scale) + 0.5, f"δ ×{0.5 / scale:.0f}" if scale < 0.5 else "δ")
    if title:
        fig.suptitle(title, fontsize=FONT + 1)
    return fig


def examples_grid(clean: torch.Tensor, adv: torch.Tensor, labels: torch.Tensor, adv_pred: torch.Tensor,
                  target: Target, clean_pred: torch.Tensor | None = None, title: str | None = None,
                  classes: list[str] | None = None, *, fmt: str | None = None, dpi: int = DPI) -> Path | IO[bytes]:
    """Draw :func:`examples_figure` and write it (see :func:`save`)."""
    return save(examples_figure(clean, adv, labels, adv_pred, clean_pred, title, classes), target, fmt, dpi)
