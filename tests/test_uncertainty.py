"""Uncertainty: Wilson/bootstrap intervals on rates (against a reference formula), the matrix's interval columns
(recomputed, round-tripped, old files still load), seed replicates and --by-config (recomputed), and McNemar's
exact test (recomputed from the binomial distribution)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats as sps
from test_matrix import copy_models, fgsm_set
from typer.testing import CliRunner

import robench
from robench import store
from robench.cli.app import app
from robench.errors import RobenchError
from robench.reports import tables
from robench.scoring import by_config, compare, matrix
from robench.stats import mcnemar, mean_ci, proportion_ci

runner = CliRunner()


def wilson_reference(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson (1927) score interval, written out from its definition."""
    z = sps.norm.ppf(0.5 + level / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


# ---------------------------------------------------------------- intervals on rates


@pytest.mark.parametrize("k,n", [(0, 40), (40, 40), (20, 40), (202, 578), (1, 3)])
@pytest.mark.parametrize("level", [0.9, 0.95, 0.99])
def test_wilson_equals_the_reference_formula(k, n, level):
    low, high = proportion_ci(k, n, level)
    ref = wilson_reference(k, n, level)
    assert low == pytest.approx(ref[0], abs=1e-12) and high == pytest.approx(ref[1], abs=1e-12)
    assert 0 <= low <= k / n <= high <= 1


def test_wilson_at_the_edges_and_narrowing_with_n():
    assert proportion_ci(0, 50)[0] == pytest.approx(0, abs=1e-15) and proportion_ci(50, 50)[1] == pytest.approx(1)
    widths = [np.subtract(*proportion_ci(n // 2, n)[::-1]) for n in (10, 40, 160, 640, 2560)]
    assert all(a > b for a, b in zip(widths, widths[1:], strict=False))
    assert widths[0] / widths[-1] == pytest.approx(16, rel=0.15)  # width ~ 1/sqrt(n)
    assert all(math.isnan(v) for v in proportion_ci(0, 0)) and all(math.isnan(v) for v in proportion_ci(3, 9,
                                                                                                          method="none"))
    with pytest.raises(RobenchError, match="unknown interval method"):
        proportion_ci(1, 2, method="wald")


def test_bootstrap_interval_is_seeded_and_close_to_wald_for_large_n():
    k, n = 300, 1000
    low, high = proportion_ci(k, n, method="bootstrap")
    assert (low, high) == proportion_ci(k, n, method="bootstrap")
    half = sps.norm.ppf(0.975) * math.sqrt(0.3 * 0.7 / n)
    assert low == pytest.approx(0.3 - half, abs=0.004) and high == pytest.approx(0.3 + half, abs=0.004)
    assert proportion_ci(0, 30, method="bootstrap") == (0.0, 0.0)


def test_t_interval_across_seeds():
    x = [0.31, 0.36, 0.33]
    low, high = mean_ci(x)
    half = sps.t.ppf(0.975, 2) * np.std(x, ddof=1) / math.sqrt(3)
    assert (low, high) == pytest.approx((np.mean(x) - half, np.mean(x) + half))
    assert all(math.isnan(v) for v in mean_ci([0.3]))


# ---------------------------------------------------------------- the matrix's interval columns


@pytest.fixture(scope="module")
def fgsm_ws(trained_ws, tmp_path_factory) -> str:
    ws = copy_models(trained_ws, tmp_path_factory.mktemp("ci"))
    fgsm_set(ws, "tiny", "fgsm-tiny", eps=0.1)
    return ws


def test_matrix_rows_carry_recomputed_intervals(fgsm_ws):
    df = matrix(fgsm_ws, device="cpu")
    assert len(df) == 2 and set(df.ci_method) == {"wilson"} and set(df.ci_level) == {0.95}
    for row in df.itertuples():
        k = round(row.defense_rate * row.n)
        assert (row.ci_low, row.ci_high) == pytest.approx(wilson_reference(k, row.n))
        a = round(row.agreement * row.n)
        assert (row.agreement_ci_low, row.agreement_ci_high) == pytest.approx(wilson_reference(a, row.n))
    wide = matrix(fgsm_ws, device="cpu", ci_level=0.99)
    assert ((wide.ci_high - wide.ci_low) > (df.ci_high - df.ci_low)).all()
    none = matrix(fgsm_ws, device="cpu", ci="none")
    assert none.ci_low.isna().all() and set(none.ci_method) == {"none"}


def test_interval_columns_round_trip_csv_and_json(fgsm_ws, tmp_path):
    from robench.cli.matrix import read_frame

    df = matrix(fgsm_ws, device="cpu", ci="bootstrap")
    for fmt in ("csv", "json"):
        path = tmp_path / f"m.{fmt}"
        path.write_text(tables.tidy_text(df, fmt))
        back = read_frame(path, ["ci_low", "ci_high"])
        for col in ("ci_low", "ci_high", "agreement_ci_low", "agreement_ci_high", "ci_level"):
            np.testing.assert_allclose(back[col].to_numpy(float), df[col].to_numpy(float), rtol=1e-12)
        assert list(back.ci_method) == ["bootstrap"] * len(df)


def test_old_csv_without_intervals_loads_in_plot_and_merge(fgsm_ws, tmp_path):
    df = matrix(fgsm_ws, device="cpu")
    old = tmp_path / "old.csv"
    keep = [c for c in df.columns if "ci_" not in c and not c.endswith("_config")]
    df[keep].to_csv(old, index=False)
    res = runner.invoke(app, ["matrix", "merge", str(old), "--ci-style", "pm", "-f", "markdown"])
    assert res.exit_code == 0, res.output
    row = df.iloc[0]
    half = 100 * np.subtract(*wilson_reference(round(row.defense_rate * row.n), row.n)[::-1]) / 2
    assert f"{100 * row.defense_rate:.2f} ±{half:.2f}" in res.stdout
    res = runner.invoke(app, ["plot", "heatmap", "--from", str(old), "--ci-style", "interval", "-o",
                              str(tmp_path / "h.png")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "h.png").stat().st_size > 1000


def test_table_cells_show_the_interval(fgsm_ws):
    df = matrix(fgsm_ws, device="cpu")
    text = tables.render(df, "markdown", ci="interval")
    for row in df.itertuples():
        assert f"{100 * row.defense_rate:.2f} [{100 * row.ci_low:.2f}, {100 * row.ci_high:.2f}]" in text
    assert r"$\pm$" in tables.render(df, "latex", ci="pm")


# ---------------------------------------------------------------- seeds


@pytest.fixture(scope="module")
def seeds_ws(trained_ws, tmp_path_factory) -> str:
    """The session's 'tiny' (the source of one FGSM set) and three seed replicates of a defective tiny CNN."""
    ws = copy_models(trained_ws, tmp_path_factory.mktemp("seeds"))
    res = runner.invoke(app, ["train", "tiny", "--dataset", "digits", "--preset", "quick", "--epochs", "2",
                              "--width", "8", "--keep", "0.5", "--seeds", "0,1,2", "-w", ws, "--device", "cpu"])
    assert res.exit_code == 0, res.output
    fgsm_set(ws, "tiny", "fgsm-std", eps=0.1)
    return ws


def test_seeds_train_distinct_replicates_and_by_config_recomputes(seeds_ws):
    names = ["tiny-keep0.5-bottom", "tiny-keep0.5-bottom-seed1", "tiny-keep0.5-bottom-seed2"]
    records = [store.read_model(n, seeds_ws) for n in names]
    assert [r.seed for r in records] == [0, 1, 2]
    assert len({r.weights_sha256 for r in records}) == 3
    df = matrix(seeds_ws, device="cpu")
    agg = by_config(df)
    row = agg[agg.target == "tiny-keep0.5-bottom"].iloc[0]
    cells = df[df.target.isin(names)].set_index("target").loc[names, "defense_rate"].to_numpy(float)
    assert row.replicates == 3 and row.replicated == "targets"
    assert row.defense_rate == pytest.approx(cells.mean()) and row["std"] == pytest.approx(cells.std(ddof=1))
    half = sps.t.ppf(0.975, 2) * cells.std(ddof=1) / math.sqrt(3)
    assert (row.ci_low, row.ci_high) == pytest.approx((cells.mean() - half, cells.mean() + half))
    assert json.loads(row.members)["targets"] == names
    alone = agg[agg.target == "tiny"].iloc[0]
    assert alone.replicates == 1 and math.isnan(alone["std"]) and alone.relation == "white-box"
    res = runner.invoke(app, ["matrix", "-w", seeds_ws, "--device", "cpu", "--by-config", "-f", "csv", "-o", "-"])
    assert res.exit_code == 0, res.output
    from io import StringIO

    cli = pd.read_csv(StringIO(res.stdout))
    assert set(cli.target) == {"tiny-keep0.5-bottom", "tiny", "tiny-keep0.3-bottom"}
    assert cli[cli.target == "tiny-keep0.5-bottom"].defense_rate.iloc[0] == pytest.approx(cells.mean())


def test_seeds_option_errors(tmp_path):
    res = runner.invoke(app, ["train", "tiny", "--dataset", "digits", "--seeds", "1,1", "-w", str(tmp_path)])
    assert res.exit_code == 2 and "distinct" in res.output
    res = runner.invoke(app, ["train", "tiny", "--dataset", "digits", "--seeds", "0,1", "--seed", "3"])
    assert res.exit_code == 2 and "not both" in res.output


# ---------------------------------------------------------------- McNemar


def test_mcnemar_identical_outcomes_give_p_one():
    a = np.array([1, 0, 1, 1, 0, 1], bool)
    t = mcnemar(a, a.copy())
    assert t.p_value == 1.0 and t.difference == 0 and t.only_a == t.only_b == 0 and t.ci_low < 0 < t.ci_high


@pytest.mark.parametrize("extra", [1, 3, 7, 12])
def test_mcnemar_strict_superset_gives_the_exact_binomial_p(extra):
    rng = np.random.default_rng(extra)
    b = rng.random(60) < 0.4
    a = b.copy()
    a[np.flatnonzero(~b)[:extra]] = True  # a defends everything b does, plus `extra` more images
    t = mcnemar(a, b)
    assert t.only_a == extra and t.only_b == 0
    assert t.p_value == pytest.approx(min(1.0, 2 * 0.5 ** extra))  # two-sided: both tails of Binomial(extra, 1/2)
    assert t.p_value == pytest.approx(sps.binomtest(extra, extra, 0.5).pvalue)
    assert t.difference == pytest.approx(extra / 60) and t.ci_low < t.difference < t.ci_high


def test_compare_recomputes_from_the_predictions(fgsm_ws, tmp_path):
    result = compare("tiny-keep0.3-bottom", "tiny", "fgsm-tiny", fgsm_ws, device="cpu")
    advset = store.load_set("fgsm-tiny", fgsm_ws)
    outcome = {}
    for name in ("tiny-keep0.3-bottom", "tiny"):
        net = robench.load_model(name, fgsm_ws).eval()
        with torch.no_grad():
            outcome[name] = (net(advset.clean).argmax(1) == advset.labels, net(advset.adv).argmax(1) == advset.labels)
    both = outcome["tiny"][0] & outcome["tiny-keep0.3-bottom"][0]
    a, b = outcome["tiny-keep0.3-bottom"][1][both], outcome["tiny"][1][both]
    t = result.test
    assert t.n == int(both.sum()) and t.only_a == int((a & ~b).sum()) and t.only_b == int((~a & b).sum())
    k, m = t.only_a, t.only_a + t.only_b
    assert t.p_value == pytest.approx(sps.binomtest(k, m, 0.5).pvalue if m else 1.0)
    res = runner.invoke(app, ["compare", "tiny-keep0.3-bottom", "tiny", "--set", "fgsm-tiny", "-w", fgsm_ws,
                              "--device", "cpu", "-f", "json", "-o", "-"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)[0]["p_value"] == pytest.approx(t.p_value)
    res = runner.invoke(app, ["compare", "tiny", "tiny", "--set", "fgsm-tiny", "-w", fgsm_ws])
    assert res.exit_code == 1 and "two different targets" in res.output
    assert Path(fgsm_ws).exists()


# ---------------------------------------------------------------- suites


SEED_SUITE = """
[study]
name = "seeds"
dataset = "digits"

[[models]]
arch = "tiny"
preset = "quick"
epochs = 2
width = 8
keep = 0.5
seed = [0, 1, 2]

[[attacks]]
source = "tiny"
method = "fgsm"
eps = "16/255"
n = 64

[matrix]
out = "by-config.csv"
by_config = true
ci_level = 0.9

[[compare]]
a = "tiny-keep0.5-bottom-seed1"
b = "tiny"
set = "tiny-fgsm-eps16-n64"
out = "compare.json"
"""


def test_suite_seed_list_by_config_and_compare(seeds_ws, tmp_path):
    import shutil

    from robench import suites

    ws = tmp_path / "ws"
    shutil.copytree(Path(seeds_ws) / "models", ws / "models")
    path = tmp_path / "seeds.toml"
    path.write_text(SEED_SUITE)
    suite = suites.load_suite(path, workspace=ws)
    steps = suites.plan(suite)
    trains = [s for s in steps if s.kind == "train"]
    assert [s.label for s in trains] == ["train tiny-keep0.5-bottom", "train tiny-keep0.5-bottom-seed1",
                                         "train tiny-keep0.5-bottom-seed2"] and all(s.done for s in trains)
    suites.run(suite)
    agg = pd.read_csv(ws / "results" / "by-config.csv")
    full = matrix(ws, device="cpu")
    row = agg[agg.target == "tiny-keep0.5-bottom"].iloc[0]
    cells = full[full.target.str.startswith("tiny-keep0.5-bottom")].defense_rate.to_numpy(float)
    assert row.replicates == 3 and row.defense_rate == pytest.approx(cells.mean())
    half = sps.t.ppf(0.95, 2) * cells.std(ddof=1) / math.sqrt(3)  # ci_level 0.9
    assert row.ci_high - row.ci_low == pytest.approx(2 * half)
    result = json.loads((ws / "results" / "compare.json").read_text())[0]
    direct = compare("tiny-keep0.5-bottom-seed1", "tiny", "tiny-fgsm-eps16-n64", ws, device="cpu")
    assert result["p_value"] == pytest.approx(direct.test.p_value) and result["n"] == direct.test.n
