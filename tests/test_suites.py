"""Experiment suites: parsing, planning, resumable runs, and the shipped suites."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from robench import store, suites
from robench.cli.app import app
from robench.errors import RobenchError

SHIPPED = sorted((Path(__file__).resolve().parents[1] / "benchmarks" / "suites").glob("*.toml"))

TINY = """
[study]
name = "tiny-study"
dataset = "digits"

[train]
preset = "quick"
epochs = 4
width = 16

[[models]]
arch = "tiny"
keep = [1.0, 0.3]

[[models]]
arch = "tiny"
seed = 1

[attack]
n = 48

[[attacks]]
source = "tiny-seed1"
method = "fgsm"
eps = "16/255"

[[attacks]]
source = "tiny-seed1"
method = "pgd"
eps = "16/255"
steps = 3

[[attacks]]
source = "tiny-seed1"
method = "pgd"
eps = "32/255"
steps = 5
target = "random"

[matrix]
out = "m.csv"
plot = "m.pdf"

[[scores]]
kind = "shuffle"
ks = [2, 4]
out = "shuffle.csv"

[[scores]]
kind = "autoattack"
n = 16
steps = 2
attacks = "apgd-ce"
out = "aa.csv"
"""


def test_shipped_suites_parse_and_plan(tmp_path):
    assert {p.stem for p in SHIPPED} >= {"table4", "table4-cpu", "mnist", "tradeoff"}
    for path in SHIPPED:
        steps = suites.plan(suites.load_suite(path, workspace=tmp_path))
        assert steps and not any(s.done for s in steps)
    table4 = suites.plan(suites.load_suite(SHIPPED[[p.stem for p in SHIPPED].index("table4")], tmp_path))
    trains = [s for s in table4 if s.kind == "train"]
    attacks = [s for s in table4 if s.kind == "attack"]
    assert len(trains) == 20 and len(attacks) == 5  # 5 archs x 3 keeps + 5 sources; 5 sets
    assert {s.args["keep"] for s in trains if "keep" in s.args} == {1.0, 0.5, 0.3}
    assert all(s.args["steps"] == 20 and s.args["eps"] == "16/255" and s.args["step"] == "1/255" for s in attacks)


def test_grid_expands_lists_but_not_list_valued_options():
    entries = suites.grid({"arch": ["a", "b"], "keep": [1.0, 0.5], "milestones": [1, 2], "seed": 0})
    assert len(entries) == 4
    assert all(e["milestones"] == [1, 2] for e in entries)


def test_bad_suites_are_clear(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[study\n")
    with pytest.raises(RobenchError, match="not valid TOML"):
        suites.load_suite(bad)
    with pytest.raises(RobenchError, match="not found"):
        suites.load_suite(tmp_path / "missing.toml")
    bad.write_text('[[models]]\narch = "tiny"\n[[models]]\narch = "tiny"\n')
    with pytest.raises(RobenchError, match="twice"):
        suites.plan(suites.load_suite(bad, tmp_path))


MISTAKES = [
    ("[modles]\n", "unknown section(s) modles"),
    ('[study]\nnmae = "x"\n', "[study]: unknown key 'nmae'; did you mean name?"),
    ('[[models]]\narch = "tiny"\n[[models]]\narch = "tiny"\nwidht = 4\n', "[[models]] #2: unknown key 'widht'; "
                                                                            "did you mean width?"),
    ('[train]\nepochs = "ten"\n', "[train]: epochs = 'ten': Input should be a valid integer"),
    ('[[models]]\narch = "tiny"\nkeep = [1.0, "half"]\n', "[[models]] #1: keep = 'half'"),
    ('[[models]]\narch = "resnet19"\n', "[[models]] #1: arch = 'resnet19': Input should be 'alexnet'"),
    ('[train]\nmilestones = [1, "x"]\n', "[train]: milestones = [1, 'x']"),
    ('[[attacks]]\nsource = "a"\neps = true\n', "[[attacks]] #1: eps = True"),
    ('[[attacks]]\nsource = "a"\nmethod = "pgd"\nsigma = 0.1\n', "[[attacks]] #1: pgd takes no --sigma"),
    ('[[scores]]\nkind = "noize"\n', "[[scores]] #1: kind = 'noize' is not one of boundary, noise"),
    ('[[scores]]\nkind = "noise"\nset = "x"\n', "[[scores]] #1: unknown key 'set'"),
    ('[matrix]\nplots = "heat.png"\n', "[matrix]: unknown key 'plots'; did you mean plot?"),
    ('[models]\narch = "tiny"\n', "write models as [[models]]"),
    ('[study]\ndataset = "imagenet"\n', "[study]: dataset = 'imagenet'"),
]


@pytest.mark.parametrize("text,message", MISTAKES, ids=[m[1][:30] for m in MISTAKES])
def test_the_schema_rejects_each_mistake_before_running(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    r = CliRunner().invoke(app, ["run", str(path), "--workspace", str(tmp_path / "ws")])
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: {message}"), lines
    assert not (tmp_path / "ws").exists()  # nothing ran


def test_the_schema_follows_the_functions():
    """Keys come from the signatures of the functions a section feeds, and choices from the registries."""
    import inspect

    import robench
    from robench.attacks import list_methods, method_spec

    fields = suites.sections()
    train_keys = set(inspect.signature(robench.train).parameters) - suites._RUNNER
    assert set(fields["models"].fields) == train_keys
    assert {k for m in list_methods() for k in method_spec(m).defaults} <= set(fields["attacks"].fields)
    assert {"plot", "out", "dpi", "models", "sets"} <= set(fields["matrix"].fields)
    assert set(suites.score_fields("tradeoff")) == {"kind", "set", "models", "out", "plot", "dpi", "precision",
                                                    "workers", "data_dir"}
    assert "plot" not in suites.score_fields("boundary")


def test_suite_runs_then_resumes_by_skipping_finished_steps(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(TINY)
    suite = suites.load_suite(path, workspace=tmp_path / "ws")
    ran = suites.run(suite)
    assert sorted(store.list_model_names(suite.workspace)) == ["tiny", "tiny-keep0.3-bottom", "tiny-seed1"]
    assert "tiny-seed1-pgd-eps32-steps5-targeted-random-n48" in store.list_set_names(suite.workspace)
    assert len(store.list_set_names(suite.workspace)) == 3
    df = pd.read_csv(suite.workspace / "results" / "m.csv")
    assert set(df["target"]) >= {"tiny", "tiny-keep0.3-bottom"} and (df["n"] > 0).all()
    assert df["defense_rate"].between(0, 1).all()
    assert df[df.set.str.contains("targeted")].target_hit_rate.between(0, 1).all()
    assert df[~df.set.str.contains("targeted")].target_hit_rate.isna().all()
    assert set(pd.read_csv(suite.workspace / "results" / "shuffle.csv")["k"]) == {2, 4}
    assert (suite.workspace / "results" / "m.pdf").read_bytes().startswith(b"%PDF-")  # [matrix] plot
    aa = pd.read_csv(suite.workspace / "results" / "aa.csv")
    assert len(aa) == 3 and (aa.robust_accuracy <= aa.clean_accuracy).all() and (aa.n == 16).all()
    assert len(ran.results) == 9 and ran.ok
    again = suites.plan(suites.load_suite(path, workspace=tmp_path / "ws"))
    assert all(s.done for s in again)
    again = suites.run(suites.load_suite(path, workspace=tmp_path / "ws"))
    assert again.results == {} and {r.status for r in again.steps} == {"skipped"}


def test_cli_run_dry_run_prints_plan_only(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(TINY)
    r = CliRunner().invoke(app, ["run", str(path), "--dry-run", "--workspace", str(tmp_path / "ws")])
    assert r.exit_code == 0, r.output
    assert "tiny-keep0.3-bottom" in r.stdout and "todo" in r.stdout
    assert not (tmp_path / "ws").exists()


def test_cli_run_bad_file_is_one_line(tmp_path):
    r = CliRunner().invoke(app, ["run", str(tmp_path / "nope.toml")])
    assert r.exit_code == 1 and "not found" in r.output and "Traceback" not in r.output


def test_demo_runs_offline_and_says_where_everything_is(tmp_path):
    ws = tmp_path / "demo"
    r = CliRunner().invoke(app, ["demo", "--workspace", str(ws), "--epochs", "1", "--n", "40", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "demo finished" in r.stderr and "Next, try" in r.stderr
    assert "resnet18-keep0.1-bottom" in r.stdout and "pgd" in r.stdout
    df = pd.read_csv(ws / "results" / "demo-matrix.csv")
    assert set(df["target"]) == {"resnet18", "resnet18-keep0.1-bottom", "resnet18-keep0.1-top", "resnet18-seed1"}
    assert set(df["method"]) == {"fgsm", "pgd"}
    pngs = list((ws / "results").glob("*.png"))
    assert len(pngs) == 3 and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    again = CliRunner().invoke(app, ["demo", "--workspace", str(ws), "--epochs", "1", "--n", "40"])
    assert again.exit_code == 0 and again.stderr.count("│ skipped") == 7  # every step skipped the second time
