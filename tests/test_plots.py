"""Reports: tidy rows and the wide paper layout in every text format; figures in every format, fitting their labels."""

from __future__ import annotations

import io
import json
import math
import re

import pandas as pd
import pytest
import torch

from robench.errors import RobenchError
from robench.reports import plots, tables
from robench.reports.labels import short_titles
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
    elif fmt == "pdf":
        assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    else:
        assert b"<svg" in data[:2000] and data.rstrip().endswith(b"</svg>")


# ---------------------------------------------------------------- tables


def test_wide_layout_is_a_pivot_in_percent():
    (attack, wide), = tables.wide(tidy()).items()
    assert attack == "pgd eps=0.06" and list(wide.columns) == ["clean", "def", "std"]
    assert wide.loc["def", "std"] == pytest.approx(80.0) and wide.loc["std", "clean"] == pytest.approx(95.0)
    assert math.isnan(wide.loc["def", "def"])


def check_latex(tex: str) -> None:
    """What a LaTeX syntax check can see without a TeX install: no bare %, _, # or $; balanced braces; matched
    environments; every row with as many cells as the column spec, and & nowhere else."""
    plain = re.sub(r"\\[%_#$&{}]", "", tex)  # drop escaped specials
    assert not re.search(r"[%_#$]", plain), plain
    depth = 0
    for ch in plain:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0
    stack = []
    for kind, env in re.findall(r"\\(begin|end)\{(\w+)\}", tex):
        if kind == "begin":
            stack.append(env)
        else:
            assert stack.pop() == env
    assert not stack
    for table in re.findall(r"\\begin\{tabular\}.*?\\end\{tabular\}", tex, re.S):
        spec = re.match(r"\\begin\{tabular\}\{(\w+)\}", table).group(1)
        body = table.split("\\toprule")[1].split("\\bottomrule")[0].replace("\\midrule", "")
        rows = [r for r in body.split("\\\\") if r.strip()]
        assert rows and all(len(re.split(r"(?<!\\)&", r)) == len(spec) for r in rows)
    outside = re.sub(r"\\begin\{tabular\}.*?\\end\{tabular\}", "", plain, flags=re.S)
    assert "&" not in outside


def test_latex_is_escaped_right_aligned_and_booktabs():
    df = tidy()
    df["attack"] = "pgd eps=16/255 random_start=false"
    df["target"] = df["target"].replace({"std": "res_net#1&2", "def": "def 50%"})
    tex = tables.render(df, "latex")
    check_latex(tex)
    assert "\\begin{tabular}{lrrr}" in tex and "\\toprule" in tex and "\\bottomrule" in tex
    assert "random\\_start" in tex and "rests on fewer than 30 images" in tex and "(\\%)" in tex
    assert "res\\_net\\#1\\&2" in tex and "def 50\\%" in tex
    with pytest.raises(AssertionError):  # the checker sees an unescaped caption
        check_latex(tex.replace("(\\%)", "(%)"))


def test_markdown_is_tabulate_with_numbers_right_aligned():
    md = tables.render(tidy(), "markdown")
    lines = md.splitlines()
    assert lines[0] == "### pgd eps=0.06: defense rate (%)"
    assert lines[3] == "|:---------|--------:|--------:|---------:|"  # text left, numbers right
    assert "| std      |   95.00 |   50.00 | 5.00 [w] |" in md and "n/a [w]" in md
    assert "[w] white-box" in lines[-1]


def test_small_n_cells_show_their_n():
    df = tidy()
    df.loc[1, "n"] = 3
    text = tables.marked(df)["pgd eps=0.06"]
    assert text.loc["std", "def"] == "50.00 (n=3)" and text.loc["def", "std"] == "80.00"
    assert tables.marked(df, show_n=True)["pgd eps=0.06"].loc["def", "std"] == "80.00 (n=90)"
    assert tables.marked(df, min_n=1)["pgd eps=0.06"].loc["std", "def"] == "50.00"


def test_csv_and_json_hold_the_same_tidy_rows():
    df = tidy()
    df["eps"] = [16 / 255, 0.1 + 0.2, math.nan, 1 / 3]
    from_csv = pd.read_csv(io.StringIO(tables.render(df, "csv")))
    from_json = pd.read_json(io.StringIO(tables.render(df, "json")), orient="records", dtype=False, precise_float=True)
    pd.testing.assert_frame_equal(from_json, from_csv, check_exact=True, check_dtype=False)
    known = [c for c in from_csv.columns if from_csv[c].notna().any()]  # an all-empty column has no dtype in JSON
    assert from_json[known].dtypes.equals(from_csv[known].dtypes)
    records = json.loads(tables.render(df, "json"))
    assert len(records) == len(df) and {"n", "relation", "defense_rate"} <= set(records[0])
    assert records[3]["defense_rate"] is None  # NaN is null
    with pytest.raises(RobenchError, match="unknown format 'html'"):
        tables.render(df, "html")


def test_format_follows_the_suffix():
    assert [tables.format_for(p, None) for p in ("a.json", "a.CSV", "a.md", "a.tex", "a.txt", None)] == [
        "json", "csv", "markdown", "latex", "csv", "csv"]
    assert tables.format_for("a.json", "latex") == "latex"


def test_one_source_with_two_sets_gets_two_columns():
    df = tidy()
    extra = df[df.source == "std"].assign(set="pgd-std-2", defense_rate=0.25)
    (_, wide), = tables.wide(pd.concat([df, extra])).items()
    assert list(wide.columns) == ["clean", "def", "std [pgd-std-2]", "std [pgd-std]"]


# ---------------------------------------------------------------- figures


def outside(fig) -> bool:
    """True when something drawn (a label, a title, a tick label) reaches beyond the figure's edges."""
    fig.canvas.draw()
    drawn = fig.get_tightbbox(fig.canvas.get_renderer())  # inches, of every artist actually drawn
    return not all(fig.bbox_inches.padded(0.01).contains(*corner) for corner in drawn.corners())


@pytest.mark.parametrize("fmt", ["png", "svg", "pdf"])
def test_heatmap(tmp_path, fmt):
    check_figure(plots.heatmap(tidy(), tmp_path / f"heat.{fmt}"), fmt)


@pytest.mark.filterwarnings("ignore:constrained_layout not applied")  # the squeezed figure, on purpose
def test_figures_fit_their_labels_and_titles():
    df = tidy()
    df["target"] = df["target"].replace({"def": "densenet121-keep0.3-bottom-keep0.7-top-channel-x2-seed3"})
    df["source"] = df["set"] = df["source"].replace({"def": "preactresnet18-keep0.1-bottom-spatial-dropout"})
    df["method"], df["params"] = "pgd", json.dumps({"eps": 16 / 255, "step": 1 / 255, "steps": 20})
    fig = plots.heatmap_figure(df)
    assert fig.axes[0].get_title() == "PGD ε=16/255, 20 steps"
    assert not outside(fig)
    long = pd.DataFrame({"model": ["resnet18-keep0.1-bottom-spatial-dropout-ls0.1-seed12"] * 2, "sigma": [0, 0.1],
                         "accuracy": [1.0, 0.5], "n": 10})
    assert not outside(plots.curves_figure(long, "sigma"))
    names = [f"class number {i} with a long name" for i in range(3)]
    images = torch.rand(3, 3, 8, 8)
    grid = plots.examples_figure(images, images, torch.arange(3), torch.tensor([1, 2, 0]), classes=names)
    assert not outside(grid) and "adv pred class number 2 with a long name" in {a.get_title() for a in grid.axes}
    squeezed = plots.heatmap_figure(df)
    squeezed.set_size_inches(2, 1)  # the checker sees labels cut off by a figure too small for them
    assert outside(squeezed)


def test_small_n_cells_are_greyed_with_their_n():
    df = tidy()
    df.loc[1, "n"] = 3  # target std, source def
    ax = plots.heatmap_figure(df).axes[0]
    texts = {t.get_text() for t in ax.texts}
    assert "50.0\nn=3" in texts and "80.0" in texts
    image = ax.images[0]
    assert tuple(image.to_rgba(image.get_array())[1, 0][:3]) == pytest.approx((0.85, 0.85, 0.85))  # greyed
    assert "80.0\nn=90" in {t.get_text() for t in plots.heatmap_figure(df, show_n=True).axes[0].texts}


def test_the_colour_range_is_set_by_the_transfer_cells_not_the_white_box_ones():
    """White-box cells (~0% defended) would stretch the scale to 0 and squeeze every transfer cell into its top;
    the range spans the black- and gray-box cells (n >= min_n) in whole tens, at least 20 points wide."""
    df = tidy()  # white-box 5%; black-box 50% and 80%
    image = plots.heatmap_figure(df).axes[0].images[0]
    assert image.get_clim() == (50.0, 80.0) == plots.colour_range(df)
    cmap = image.get_cmap()
    assert tuple(image.to_rgba(image.get_array())[1, 1]) == pytest.approx(cmap(0.0))  # std on std, 5%: clipped
    df.loc[2, "defense_rate"] = 0.93  # black-box 50% and 93%
    assert plots.colour_range(df) == (50.0, 100.0)
    df.loc[1, "n"] = 3  # a small-n cell does not set it either: 93% alone, widened to 20 points
    assert plots.colour_range(df) == (80.0, 100.0)
    assert plots.colour_range(df[df["relation"] == "white-box"]) == (0.0, 100.0)  # nothing but white-box cells


def test_short_titles_tell_configurations_apart():
    configs = [("pgd", {"eps": 16 / 255, "step": 1 / 255, "steps": 20}),
               ("pgd", {"eps": 16 / 255, "step": 2 / 255, "steps": 20}),
               ("fgsm", {"eps": 8 / 255}), ("noise", {"sigma": 0.08}), ("cw", {"steps": 100, "confidence": 0.0}),
               ("apgd", {"eps": 0.5, "steps": 100, "norm": "l2", "target": "random", "targeted": True}),
               ("square", {"eps": 16 / 255, "queries": 5000, "p_init": 0.8}),
               ("hopskipjump", {"eps": 0.5, "queries": 1000, "norm": "l2"})]
    assert short_titles(configs) == ["PGD ε=16/255, 20 steps, step=1/255", "PGD ε=16/255, 20 steps, step=2/255",
                                     "FGSM ε=8/255", "Gaussian noise σ=0.08", "C&W 100 steps",
                                     "APGD L2 ε=0.5, 100 steps, targeted (random)", "Square ε=16/255, 5000 queries",
                                     "HopSkipJump L2 ε=0.5, 1000 queries"]


def test_every_method_has_a_display_name():
    from robench.attacks import list_methods
    from robench.reports.labels import METHOD_NAMES

    assert set(list_methods()) <= set(METHOD_NAMES)


def test_format_from_suffix_or_argument(tmp_path):
    assert plots.plot_path(tmp_path / "a.svg") == tmp_path / "a.svg"
    assert plots.plot_path(tmp_path / "a.pdf") == tmp_path / "a.pdf"  # not a.pdf.png
    assert plots.plot_path(tmp_path / "a", "svg") == tmp_path / "a.svg"
    assert plots.plot_path(tmp_path / "a") == tmp_path / "a.png"
    assert plots.plot_path(tmp_path / "resnet18-keep0.1") == tmp_path / "resnet18-keep0.1.png"
    with pytest.raises(RobenchError, match="unknown figure format 'gif'"):
        plots.plot_path(tmp_path / "a", "gif")
    with pytest.raises(RobenchError, match="contradicts the file name a.pdf"):
        plots.plot_path(tmp_path / "a.pdf", "svg")


def test_dpi_sets_the_pixel_size(tmp_path):
    from PIL import Image

    small, large = (plots.heatmap(tidy(), tmp_path / f"h{d}.png", dpi=d) for d in (50, 200))
    with Image.open(small) as a, Image.open(large) as b:
        assert b.size[0] == pytest.approx(4 * a.size[0], rel=0.05)


@pytest.mark.parametrize("fmt", ["png", "svg", "pdf"])
def test_curves(tmp_path, fmt):
    noise = pd.DataFrame({"model": ["a"] * 3 + ["b"] * 3, "sigma": [0, 0.04, 0.1] * 2,
                          "accuracy": [1, 0.9, 0.5, 1, 0.95, 0.8], "n": 10})
    check_figure(plots.noise_plot(noise, tmp_path / f"noise.{fmt}"), fmt)
    shuffle = noise.rename(columns={"sigma": "k"}).assign(k=[2, 4, 8] * 2)
    check_figure(plots.shuffle_plot(shuffle, tmp_path / f"shuffle.{fmt}"), fmt)
    trade = pd.DataFrame({"model": ["k1", "k05", "k03"], "keep": [1.0, 0.5, 0.3], "clean_accuracy": [0.95, 0.93, 0.9],
                          "defense_rate": [0.06, 0.54, 0.78]})
    check_figure(plots.tradeoff_plot(trade, tmp_path / f"trade.{fmt}"), fmt)


def test_a_stream_gets_the_figure_bytes():
    buffer = io.BytesIO()
    plots.heatmap(tidy(), buffer, fmt="svg")
    assert b"<svg" in buffer.getvalue()[:2000]


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
