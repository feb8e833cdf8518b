"""Figures with matplotlib's Agg canvas (no display, no global pyplot state): PNG by default, SVG on request.

Each function takes a tidy frame (or tensors) and a path, writes the figure atomically and returns the path.
The format follows the path's suffix (.png or .svg).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from robench.errors import RobenchError
from robench.files import atomic_path
from robench.reports.tables import MARKERS, column_labels, wide

PLOT_FORMATS = ("png", "svg")


def plot_path(path: str | Path, fmt: str | None = None) -> Path:
    """``path`` with a .png/.svg suffix: ``fmt`` when given (added if the suffix differs), else the suffix."""
    path = Path(path)
    suffix = path.suffix.lower().lstrip(".")
    fmt = fmt or (suffix if suffix in PLOT_FORMATS else "png")
    if fmt not in PLOT_FORMATS:
        raise RobenchError(f"unknown plot format '{fmt}': choose one of {', '.join(PLOT_FORMATS)}")
    return path if suffix == fmt else path.with_name(path.name + "." + fmt)


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` atomically in the format of the path's suffix (see :func:`plot_path`)."""
    path = plot_path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip("."), dpi=120)
    return path


def heatmap(df: pd.DataFrame, path: str | Path, value: str = "defense_rate") -> Path:
    """The matrix as heatmaps (one panel per attack configuration): targets x sources, cells in %."""
    if df.empty:
        raise RobenchError("nothing to plot: the matrix has no scored cells")
    tables = wide(df, value)
    width = max(4.0, max(1.2 * (t.shape[1] - 1) + 3 for t in tables.values()))
    fig = _figure(width, sum(0.5 * len(t) + 1.6 for t in tables.values()))
    axes = fig.subplots(len(tables), 1, squeeze=False)[:, 0]
    for ax, (attack, table) in zip(axes, tables.items(), strict=True):
        values = table.drop(columns="clean").to_numpy(dtype=float)
        image = ax.imshow(values, vmin=0, vmax=100, cmap="viridis", aspect="auto")
        part = df[df["attack"] == attack]
        part = part.assign(column=column_labels(part)).set_index(["target", "column"])["relation"].to_dict()
        for i, target in enumerate(table.index):
            for j, source in enumerate(table.columns[1:]):
                v = values[i, j]
                mark = MARKERS.get(part.get((target, source), ""), "")
                ax.text(j, i, "n/a" if math.isnan(v) else f"{v:.1f}{mark}", ha="center", va="center",
                        color="white" if not math.isnan(v) and v < 60 else "black", fontsize=8)
        ax.set_xticks(range(values.shape[1]), [str(c) for c in table.columns[1:]], rotation=30, ha="right")
        ax.set_yticks(range(len(table)), [f"{t} ({c:.1f}%)" for t, c in zip(table.index, table["clean"], strict=True)])
        ax.set_xlabel("source")
        ax.set_title(attack, fontsize=9)
        fig.colorbar(image, ax=ax, label=f"{value.replace('_', ' ')} (%)")
    return save(fig, path)


def curves(df: pd.DataFrame, path: str | Path, x: str, y: str = "accuracy", hue: str = "model",
           xlabel: str | None = None, title: str | None = None) -> Path:
    """One line per ``hue`` value: ``y`` against ``x`` (the noise curve, the patch-shuffle curve)."""
    if df.empty:
        raise RobenchError("nothing to plot: the score table is empty")
    fig = _figure(6, 4)
    ax = fig.subplots()
    for label, part in df.groupby(hue, sort=False):
        part = part.sort_values(x)
        ax.plot(part[x], part[y] * 100, marker="o", label=str(label))
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(f"{y} (%)")
    ax.set_ylim(0, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    return save(fig, path)


def noise_plot(df: pd.DataFrame, path: str | Path) -> Path:
    """Accuracy against Gaussian-noise sigma, one line per model (frame of ``noise_curve``)."""
    return curves(df, path, "sigma", xlabel="noise sigma (images in [0,1])", title="Gaussian noise")


def shuffle_plot(df: pd.DataFrame, path: str | Path) -> Path:
    """Accuracy against patch-grid size k, one line per model (frame of ``shuffle_curve``)."""
    return curves(df, path, "k", xlabel="k (k x k patches shuffled)", title="Patch shuffle")


def tradeoff_plot(df: pd.DataFrame, path: str | Path, title: str | None = None) -> Path:
    """Defense rate and clean accuracy against keep probability (frame of ``tradeoff``)."""
    if df.empty:
        raise RobenchError("nothing to plot: the trade-off table is empty")
    part = df.sort_values("keep")
    fig = _figure(6, 4)
    ax = fig.subplots()
    ax.plot(part["keep"], part["defense_rate"] * 100, marker="o", label="defense rate")
    ax.plot(part["keep"], part["clean_accuracy"] * 100, marker="s", label="clean accuracy")
    ax.set_xlabel("keep probability")
    ax.set_ylabel("%")
    ax.set_ylim(0, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or "keep trade-off", fontsize=9)
    return save(fig, path)


def folder_plot(df: pd.DataFrame, path: str | Path, title: str | None = None) -> Path:
    """Accuracy on a test-only folder beside clean accuracy, one pair of bars per model (frame of
    ``folder_scores``)."""
    if df.empty:
        raise RobenchError("nothing to plot: the folder score table is empty")
    fig = _figure(max(5.0, 0.9 * len(df) + 2), 4)
    ax = fig.subplots()
    x = range(len(df))
    folder = Path(str(df["folder"].iloc[0])).name if "folder" in df else "folder"
    ax.bar([i - 0.2 for i in x], df["clean_accuracy"].astype(float) * 100, 0.4, label="own test split")
    ax.bar([i + 0.2 for i in x], df["accuracy"] * 100, 0.4, label=folder)
    ax.set_xticks(list(x), [str(m) for m in df["model"]], rotation=30, ha="right")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 102)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    ax.set_title(title or f"accuracy on {folder}", fontsize=9)
    return save(fig, path)


def _show(ax, image: torch.Tensor, title: str) -> None:
    """Draw one (C, H, W) image in [0,1]: grayscale for one channel."""
    img = image.detach().float().clamp(0, 1).cpu()
    if img.shape[0] == 1:
        ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(img.permute(1, 2, 0).numpy())
    ax.set_title(title, fontsize=7)
    ax.axis("off")


def examples_grid(clean: torch.Tensor, adv: torch.Tensor, labels: torch.Tensor, adv_pred: torch.Tensor,
                  path: str | Path, clean_pred: torch.Tensor | None = None, title: str | None = None,
                  classes: list[str] | None = None) -> Path:
    """Clean (top row) vs adversarial (middle) with true/predicted labels, and the perturbation (bottom, rescaled).

    Images (n, C, H, W) in [0,1]; labels and predictions (n,).
    """
    n = len(labels)
    if n == 0:
        raise RobenchError("nothing to plot: the set is empty")

    def name(i: torch.Tensor) -> str:
        return classes[int(i)] if classes else str(int(i))

    fig = _figure(max(3.0, 1.3 * n), 4.4)
    axes = fig.subplots(3, n, squeeze=False)
    for i in range(n):
        pred = f"\npred {name(clean_pred[i])}" if clean_pred is not None else ""
        _show(axes[0, i], clean[i], f"true {name(labels[i])}{pred}")
        _show(axes[1, i], adv[i], f"adv pred {name(adv_pred[i])}")
        delta = adv[i] - clean[i]
        scale = float(delta.abs().max()) or 1.0
        _show(axes[2, i], delta / (2 * scale) + 0.5, f"delta x{0.5 / scale:.0f}" if scale < 0.5 else "delta")
    if title:
        fig.suptitle(title, fontsize=9)
    return save(fig, path)
