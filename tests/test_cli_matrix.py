"""`robench matrix`, `robench scores ...`, `robench plot ...` through Typer's runner, including bad input."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest
from test_matrix import DIGITS, copy_models, fgsm_set, random_set, save_untrained, source_entry
from typer.testing import CliRunner

from robench import store
from robench.cli.app import app

runner = CliRunner()
REQUIRED = ["target", "set", "source", "method", "n", "defense_rate", "agreement", "relation",
            "target_clean_accuracy"]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(r, *needles, code=None):
    """A failed run with one line on stderr (holding every needle), no traceback, and exit code ``code``."""
    assert r.exit_code != 0 and (code is None or r.exit_code == code), r.output
    assert "Traceback" not in r.output
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    for needle in needles:
        assert needle in r.stderr, r.stderr


@pytest.fixture(scope="module")
def cli_ws(trained_ws, tmp_path_factory) -> str:
    ws = copy_models(trained_ws, tmp_path_factory.mktemp("cli"))
    fgsm_set(ws, "tiny", "fgsm-tiny", eps=0.1)
    return ws


def test_empty_workspace(ws):
    one_line_error(run("matrix", "--workspace", ws), "no models in workspace", "robench train")
    save_untrained(ws, "a")
    one_line_error(run("matrix", "--workspace", ws), "no sets in workspace", "robench attack")


@pytest.mark.parametrize("option,pattern,available", [
    ("--models", "nomatch*", "tiny, tiny-keep0.3-bottom"),
    ("--sets", "pgd-*", "fgsm-tiny"),
])
def test_bad_filter_names_the_pattern_and_the_choices(cli_ws, option, pattern, available):
    one_line_error(run("matrix", option, pattern, "--workspace", cli_ws), f"'{pattern}'", f"available: {available}")


def test_matrix_writes_the_tidy_csv(cli_ws, tmp_path):
    out = tmp_path / "results.csv"
    r = run("matrix", "--workspace", cli_ws, "--out", out, "--device", "cpu")
    assert r.exit_code == 0, r.output
    df = pd.read_csv(out)
    assert set(REQUIRED) <= set(df.columns) and len(df) == 2
    assert df.defense_rate.between(0, 1).all() and df.agreement.between(0, 1).all()
    assert set(df.relation) == {"white-box", "black-box"}
    assert "fgsm eps=0.1" in r.stdout and "[w]" in r.stdout and "clean" in r.stdout


def test_wide_formats(cli_ws, tmp_path):
    r = run("matrix", "--workspace", cli_ws, "--format", "markdown")
    assert r.exit_code == 0 and r.stdout.startswith("### fgsm eps=0.1") and "| target " in r.stdout
    assert r.stdout.splitlines()[3].startswith("|:---") and r.stdout.splitlines()[3].endswith("--:|")
    tex = tmp_path / "m.tex"
    r = run("matrix", "--workspace", cli_ws, "--format", "latex", "--out", tex, "--value", "agreement")
    assert r.exit_code == 0 and "\\begin{tabular}" in tex.read_text()
    one_line_error(run("matrix", "--workspace", cli_ws, "--format", "html"), "unknown --format 'html'",
                   "choose one of csv, json, latex, markdown, table")


def test_skipped_cells_are_reported(cli_ws, tmp_path):
    ws = copy_models(cli_ws, tmp_path)
    a = store.read_model("tiny", ws)
    random_set(ws, "mnist-set", [source_entry(a)], dataset=replace(DIGITS, name="mnist", input_size=28))
    r = run("matrix", "--workspace", ws)
    assert r.exit_code == 1 and "Traceback" not in r.output
    lines = r.stderr.strip().splitlines()
    assert lines[-1].startswith("error: no (target, set) pair could be scored")
    assert "skipped tiny on mnist-set: set 'mnist-set' is from dataset mnist" in r.stderr
    random_set(ws, "ok", [source_entry(a)])
    r = run("matrix", "--workspace", ws, "--out", tmp_path / "r.csv")  # the scorable cells are still written
    assert r.exit_code == 0 and len(pd.read_csv(tmp_path / "r.csv")) == 2 and "skipped" in r.stderr


def test_scores_and_plots(cli_ws, tmp_path):
    csv, svg = tmp_path / "noise.csv", tmp_path / "noise.svg"
    r = run("scores", "noise", "--workspace", cli_ws, "--sigmas", "0,0.1", "--n", "40", "--out", csv, "--plot", svg)
    assert r.exit_code == 0, r.output
    noise = pd.read_csv(csv)
    assert list(noise.columns) == ["model", "sigma", "accuracy", "n", "precision", "ci_low", "ci_high"]
    assert set(noise.precision) == {"fp32"}
    assert svg.read_bytes().rstrip().endswith(b"</svg>")
    r = run("scores", "shuffle", "--workspace", cli_ws, "--k", "1,4", "--n", "40")
    assert r.exit_code == 0 and "k=4" in r.stdout
    r = run("scores", "tradeoff", "--set", "fgsm-tiny", "--workspace", cli_ws, "--out", tmp_path / "t.csv")
    assert r.exit_code == 0 and list(pd.read_csv(tmp_path / "t.csv").keep) == [1.0, 0.3]
    one_line_error(run("scores", "boundary", "--mode", "sets", "--workspace", cli_ws), "no boundary set")

    results = tmp_path / "results.csv"
    assert run("matrix", "--workspace", cli_ws, "--out", results).exit_code == 0
    r = run("plot", "heatmap", "--from", results, "--out", tmp_path / "heat", "--format", "svg")
    assert r.exit_code == 0 and (tmp_path / "heat.svg").stat().st_size > 0
    r = run("plot", "examples", "fgsm-tiny", "--workspace", cli_ws, "--model", "tiny-keep0.3-bottom", "--n", "4",
            "--out", tmp_path / "ex.png")
    assert r.exit_code == 0 and (tmp_path / "ex.png").read_bytes().startswith(b"\x89PNG")
    one_line_error(run("plot", "tradeoff", "--workspace", cli_ws), "pass --set NAME")
    one_line_error(run("plot", "noise", "--from", results), "lacks column(s) model, sigma, accuracy")


def test_sets_made_by_the_attack_layer(cli_ws, tmp_path):
    """The set contract end to end: a set from robench.attack scores like a hand-made one."""
    import robench.attacks

    ws = copy_models(cli_ws, tmp_path)
    rec = robench.attacks.attack("tiny", "fgsm", eps=0.1, n=60, workspace=ws, device="cpu")
    r = run("matrix", "--workspace", ws, "--out", tmp_path / "r.csv")
    assert r.exit_code == 0, r.output
    df = pd.read_csv(tmp_path / "r.csv")
    assert set(df.set) == {rec.name} and df.set_index("target").relation["tiny"] == "white-box"
    assert df.set_index("target").defense_rate["tiny"] == 0.0


def test_scores_autoattack_writes_the_tidy_csv(cli_ws, tmp_path):
    out = tmp_path / "aa.csv"
    r = run("scores", "autoattack", "-w", cli_ws, "--models", "tiny", "--n", "16", "--steps", "2", "--queries", "10",
            "--attacks", "apgd-ce,square", "--out", out)
    assert r.exit_code == 0, r.output
    df = pd.read_csv(out)
    assert list(df.model) == ["tiny"] and df.n[0] == 16 and df.robust_accuracy[0] <= df.clean_accuracy[0]
    assert "8/255" in r.stdout and "robust_accuracy" in r.stdout
    one_line_error(run("scores", "autoattack", "-w", cli_ws, "--attacks", "apgd-x"), "--attacks of autoattack")
