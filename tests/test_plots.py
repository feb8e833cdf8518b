"""Reports: the wide paper layout in every text format, and figures written as valid, non-empty PNG/SVG."""

from __future__ import annotations

import json
import math
import re

import pandas as pd
import pytest
import torch

from robench.errors import RobenchError
from robench.reports import plots, tables
from robench.scoring import COLUMNS

PNG = b"\x89PNG\r\n\x1a\n"


def tidy() -> pd.DataFrame:
    """A small tidy matrix frame: two targets, two sources of one attack, one cell with n = 0."""
    rows = []
    cells = [("std", "std", "white-box", 0.05, 100), ("std", "def", "black-box", 0.5, 80),
             ("def", "std", "black-box", 0.8, 90), ("def", "def", "white-box", math.nan, 0)]
    for target, source, rel, rate, n in cells:
        rows.append({c: None for c in COLUMNS} | {
            "target": target, "set": f"pgd-{source}", "source": source, "method": "pgd", "attack": "pgd eps=0.06",
            "relation": rel, "n": n, "defense_rate": rate, "agreement": 0.5,
            "target_clean_accuracy": {"std": 0.95, "def": 0.9}[target]})
    return pd.DataFrame(rows, columns=COLUMNS)


def check_figure(path, fmt):
    data = path.read_bytes()
    assert path.suffix == f".{fmt}" and len(data) > 1000
    if fmt == "png":
        assert data.startswith(PNG)
    else:
        assert b"<svg" in data[:2000] and data.rstrip().endswith(b"</svg>")


# ---------------------------------------------------------------- tables


def test_wide_layout_is_a_pivot_in_percent():
    (attack, wide), = tables.wide(tidy()).items()
    assert attack == "pgd eps=0.06" and list(wide.columns) == ["clean", "def", "std"]
    assert wide.loc["def", "std"] == pytest.approx(80.0) and wide.loc["std", "clean"] == pytest.approx(95.0)
    assert math.isnan(wide.loc["def", "def"])


def test_text_formats():
    df = tidy()
    md = tables.render(df, "markdown")
    # pandas' to_markdown pads the columns when the optional 'tabulate' is installed; the fallback does not
    assert "### pgd eps=0.06" in md and "| std | 95.00 | 50.00 | 5.00 [w] |" in re.sub(r" +", " ", md)
    assert "n/a [w]" in md
    tex = tables.render(df, "latex")
    assert "\\begin{tabular}" in tex and "80.00" in tex and "\\caption{pgd eps=0.06" in tex
    csv = tables.render(df, "csv").splitlines()
    assert csv[0] == "attack,target,clean,def,std" and len(csv) == 3
    records = json.loads(tables.render(df, "json"))
    assert {r["target"]: r["std"] for r in records} == {"std": pytest.approx(5.0), "def": pytest.approx(80.0)}
    with pytest.raises(RobenchError, match="unknown format 'html'"):
        tables.render(df, "html")


def test_one_source_with_two_sets_gets_two_columns():
    df = tidy()
    extra = df[df.source == "std"].assign(set="pgd-std-2", defense_rate=0.25)
    (_, wide), = tables.wide(pd.concat([df, extra])).items()
    assert list(wide.columns) == ["clean", "def", "std [pgd-std-2]", "std [pgd-std]"]


# ---------------------------------------------------------------- figures


@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_heatmap(tmp_path, fmt):
    check_figure(plots.heatmap(tidy(), tmp_path / f"heat.{fmt}"), fmt)


def test_format_from_suffix_or_argument(tmp_path):
    assert plots.plot_path(tmp_path / "a.svg") == tmp_path / "a.svg"
    assert plots.plot_path(tmp_path / "a", "svg") == tmp_path / "a.svg"
    assert plots.plot_path(tmp_path / "a") == tmp_path / "a.png"
    with pytest.raises(RobenchError, match="unknown plot format 'pdf'"):
        plots.plot_path(tmp_path / "a", "pdf")


@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_curves(tmp_path, fmt):
    noise = pd.DataFrame({"model": ["a"] * 3 + ["b"] * 3, "sigma": [0, 0.04, 0.1] * 2,
                          "accuracy": [1, 0.9, 0.5, 1, 0.95, 0.8], "n": 10})
    check_figure(plots.noise_plot(noise, tmp_path / f"noise.{fmt}"), fmt)
    shuffle = noise.rename(columns={"sigma": "k"}).assign(k=[2, 4, 8] * 2)
    check_figure(plots.shuffle_plot(shuffle, tmp_path / f"shuffle.{fmt}"), fmt)
    trade = pd.DataFrame({"model": ["k1", "k05", "k03"], "keep": [1.0, 0.5, 0.3], "clean_accuracy": [0.95, 0.93, 0.9],
                          "defense_rate": [0.06, 0.54, 0.78]})
    check_figure(plots.tradeoff_plot(trade, tmp_path / f"trade.{fmt}"), fmt)


@pytest.mark.parametrize("channels", [1, 3])
def test_examples_grid(tmp_path, channels):
    clean = torch.rand(5, channels, 32, 32)
    adv = (clean + 0.03 * torch.randn_like(clean)).clamp(0, 1)
    labels = torch.arange(5)
    path = plots.examples_grid(clean, adv, labels, (labels + 1) % 10, tmp_path / "ex.png", clean_pred=labels,
                               title="examples")
    check_figure(path, "png")


def test_empty_inputs_are_errors(tmp_path):
    with pytest.raises(RobenchError, match="nothing to plot"):
        plots.heatmap(tidy().iloc[:0], tmp_path / "x.png")
    with pytest.raises(RobenchError, match="nothing to plot"):
        plots.examples_grid(*(torch.empty(0, 1, 8, 8),) * 2, torch.empty(0), torch.empty(0), tmp_path / "x.png")
    assert not list(tmp_path.iterdir())
