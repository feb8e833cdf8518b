"""`robench train` / `robench models` through Typer's runner, including bad input."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from robench.cli.app import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_train_and_list(ws):
    r = run("train", "tiny", "--dataset", "digits", "--preset", "quick", "--epochs", "1", "--keep", "0.5",
            "--workspace", ws)
    assert r.exit_code == 0, r.output
    assert "tiny-keep0.5-bottom" in r.output
    r = run("models", "--workspace", ws)
    assert r.exit_code == 0 and "tiny-keep0.5-bottom" in r.stdout


def test_help_lists_placements():
    r = run("train", "--help")
    assert r.exit_code == 0 and "stem conv + layer1 + layer2" in r.output


@pytest.mark.parametrize("args,message", [
    (["resnet19"], "did you mean resnet18"),
    (["tiny", "--keep", "0"], "(0, 1]"),
    (["tiny", "--keep", "1.5"], "(0, 1]"),
    (["tiny", "--dataset", "imagenet"], "unknown --dataset 'imagenet'"),
    (["tiny", "--mask", "pixel"], "unknown --mask 'pixel'"),
    (["tiny", "--placement", "middle"], "unknown --placement 'middle'"),
    (["tiny", "--preset", "turbo"], "unknown --preset 'turbo'"),
    (["tiny", "--keep", "abc"], "Invalid value for '--keep'"),
])
def test_bad_input_is_one_line_no_traceback(ws, args, message):
    r = run("train", *args, "--workspace", ws)
    assert r.exit_code != 0
    assert message in r.output
    assert "Traceback" not in r.output
    assert len(r.stderr.strip().splitlines()) == 1


def test_missing_data_says_where(ws, tmp_path):
    r = run("train", "tiny", "--dataset", "mnist", "--data-dir", tmp_path / "nodata", "--workspace", ws)
    assert r.exit_code == 1 and str(tmp_path / "nodata") in r.output and "Traceback" not in r.output


def test_existing_name_is_an_error(ws):
    args = ["train", "tiny", "--dataset", "digits", "--preset", "quick", "--epochs", "1", "--workspace", ws]
    assert run(*args).exit_code == 0
    r = run(*args)
    assert r.exit_code == 1 and "already exists" in r.output


def test_empty_workspace_models(ws):
    r = run("models", "--workspace", ws)
    assert r.exit_code == 0 and "no models" in r.output
