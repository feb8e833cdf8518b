"""Bad input never ends in a traceback and fails before the work starts: one line on stderr, the exit code of its
kind (2: the command line is wrong; 1: the work failed), nothing in the workspace changed."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
from pathlib import Path

import pytest
from test_cli_conventions import commands
from test_cli_matrix import one_line_error, run

from robench import checks, records, store
from robench.checks import DOMAINS
from robench.errors import RobenchError, UsageError

OLD = Path(__file__).parent / "data" / "workspace-0.1"


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` with its size and mtime: what a failed command must leave as it was."""
    return {str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in sorted(root.rglob("*"))}


@pytest.fixture
def old_ws(tmp_path) -> Path:
    ws = tmp_path / "ws"
    shutil.copytree(OLD, ws)
    return ws


# ---------------------------------------------------------------- every option, at its domain's boundary

# what each command needs besides the option under test (valid values, so only the option is wrong)
REQUIRED = {("train",): ["tiny"], ("attack",): ["-s", "tiny"], ("import",): ["x", "--from", "timm:x", "--dataset",
            "digits"], ("scores", "tradeoff"): ["--set", "s"], ("scores", "folder"): ["--data-dir", "."],
            ("run",): ["suite.toml"], ("matrix", "merge"): ["a.csv"]}


def outside(domain: checks.Domain) -> list[str]:
    """Values just outside ``domain``, plus the ones outside every domain: empty, NaN, infinite, wrong type."""
    if domain.kind == "device":
        return ["gpu", "", "cuda:x"]
    if domain.kind == "file":
        return [".", ""]
    bad = ["", "x", "nan", "inf"] if domain.kind == "float" else ["", "x", "nan", "1.5"]
    if domain.low is not None:
        bad.append(f"{domain.low:g}" if domain.low_open else f"{domain.low - 1:g}")
    if domain.high is not None:
        bad.append(f"{domain.high:g}" if domain.high_open else f"{domain.high + 1:g}")
    return [f"1,{b}" if domain.each and b else b for b in bad] + (["1,,x"] if domain.each else [])


CASES = [(path, command, opt, given) for path, command in commands() for p in command.params
         if (domain := DOMAINS.get(p.name)) is not None and not p.hidden
         for opt in [next(o for o in p.opts if o.startswith("--") or p.param_type_name == "argument")]
         for given in outside(domain)]


def test_every_numeric_option_has_a_domain():
    """An int or float option the table does not know would take 0, -1 and NaN: every one must have a domain."""
    numeric = [(path, p.name) for path, command in commands() for p in command.params
               if getattr(getattr(p, "type_descriptor", None), "annotation", None) in (int, float)]
    assert numeric and [x for x in numeric if x[1] not in DOMAINS] == []
    assert len(CASES) > 200  # every command's options, several values each


def test_boundary_values_are_one_line_usage_errors(tmp_path, monkeypatch):
    """Property: for every option of every command with a domain, every value outside it (0, -1, NaN, inf,
    empty, wrong type, a folder for a file) exits 2 with one line naming the option, no traceback, and leaves
    the workspace (files and mtimes) as it was."""
    ws = tmp_path / "ws"
    shutil.copytree(OLD, ws)
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    for path, command, opt, given in CASES:
        workspace = ["-w", ws / "new" if path == ("demo",) else ws] if "workspace" in {
            p.name for p in command.params} else []
        args = [*path, *REQUIRED.get(path, []), *workspace, opt, given]
        r = run(*args)
        one_line_error(r, opt, code=2)
        assert "Invalid value" in r.stderr, (args, r.stderr)
    assert snapshot(tmp_path) == before


def test_the_library_checks_the_same_domains(old_ws):
    """The Python API refuses what the CLI refuses, with a UsageError naming the keyword."""
    import robench

    with pytest.raises(UsageError, match=r"batch_size = 0: expected a whole number >= 1"):
        robench.matrix(old_ws, batch_size=0)
    with pytest.raises(UsageError, match=r"n = -5"):
        robench.scoring.shuffle_curve("*", old_ws, n=-5)
    with pytest.raises(UsageError, match=r"keep = nan"):
        robench.train("tiny", dataset="digits", workspace=old_ws, keep=math.nan)
    with pytest.raises(UsageError, match="sigmas"):
        robench.scoring.noise_curve("*", old_ws, sigmas=[0.1, math.inf])
    assert checks.numbers("2, 4,8", "ks") == [2, 4, 8] and checks.numbers(None, "ks") is None


# ---------------------------------------------------------------- devices


def test_devices(tmp_path):
    import torch

    from robench.runtime import pick_device

    with pytest.raises(UsageError, match="not a device; use cpu, cuda"):
        pick_device("gpu")
    missing = f"cuda:{torch.cuda.device_count()}" if torch.cuda.is_available() else "cuda"
    with pytest.raises(UsageError, match="--device cpu|pick one of those"):
        pick_device(missing)
    one_line_error(run("train", "tiny", "--device", "gpu", "-w", tmp_path), "--device", "use cpu, cuda", code=2)
    # a well-formed device the machine lacks: refused by the library before the data is loaded or a file written
    r = run("train", "tiny", "--dataset", "digits", "--epochs", "1", "--device", missing, "-w", tmp_path / "ws")
    one_line_error(r, f"device '{missing}'", code=2)
    assert not (tmp_path / "ws").exists()


# ---------------------------------------------------------------- suites


def test_suite_entries_are_checked_against_their_function(tmp_path):
    suite = tmp_path / "s.toml"
    suite.write_text('[study]\ndataset = "digits"\n[[models]]\narch = "tiny"\nepochs = 1\n'
                     '[[attacks]]\nsource = "tiny"\nmethod = "fgsm"\n[[scores]]\nkind = "tradeoff"\n')
    one_line_error(run("run", suite, "--dry-run", "-w", tmp_path / "ws"), "[[scores]] #1 needs set")
    suite.write_text('[[models]]\narch = "tiny"\nepochs = 0\n')
    one_line_error(run("run", suite, "--dry-run", "-w", tmp_path / "ws"), "epochs = 0", "whole number >= 1")
    suite.write_text('[[scores]]\nkind = "noise"\nsigmas = [0.1, -0.1]\n')
    one_line_error(run("run", suite, "--dry-run", "-w", tmp_path / "ws"), "-0.1 in it")
    assert not (tmp_path / "ws").exists()


# ---------------------------------------------------------------- records

BAD_VALUES = ["digits", 3, [1], {"a": 1}, True, 1.5]


def _records(ws: Path, current: bool) -> list[tuple[Path, dict]]:
    out = []
    for path, reader in ((ws / "models" / "tiny", records.read_model_record),
                         (ws / "sets" / "tiny-fgsm-eps8-n8", records.read_set_record)):
        name = "model.json" if "models" in str(path) else "set.json"
        data = reader(path).to_json() if current else json.loads((path / name).read_text())
        out.append((path / name, data))
    return out


@pytest.mark.parametrize("current", [False, True], ids=["0.1-format", "current"])
def test_a_malformed_field_is_the_corrupt_record_error(old_ws, current):
    """Any field (or field of a nested record) holding the wrong JSON type is the one corrupt-record error."""
    for file, data in _records(old_ws, current):
        reader = records.read_model_record if file.name == "model.json" else records.read_set_record
        keys = [(k, None) for k in data if k != "schema"]
        keys += [(k, s) for k, v in data.items() if isinstance(v, dict) for s in v]
        refused = 0
        for key, sub in keys:
            for bad in BAD_VALUES:
                broken = json.loads(json.dumps(data))
                (broken if sub is None else broken[key])[sub or key] = bad
                file.write_text(json.dumps(broken))
                try:
                    reader(file.parent)
                except RobenchError as e:
                    text = str(e)
                    assert text.startswith("corrupt") and "record" in text and file.name in text, text
                    assert "\n" not in text
                    refused += 1
        assert refused > len(keys)  # most keys refuse most wrong types; none raised anything else
        file.write_text(json.dumps({**data, "dataset": "digits"}))
        with pytest.raises(RobenchError, match=r"corrupt .* record .*field 'dataset' holds str"):
            reader(file.parent)
    r = run("models", "-w", old_ws)
    one_line_error(r, "corrupt model record", code=1)


# ---------------------------------------------------------------- the workspace


def test_overwrite_never_follows_a_symlink(tmp_path, old_ws):
    outside = tmp_path / "elsewhere"
    shutil.copytree(old_ws / "models" / "tiny", outside)
    (old_ws / "models" / "linked").symlink_to(outside, target_is_directory=True)
    before = snapshot(tmp_path)
    r = run("train", "tiny", "--dataset", "digits", "--name", "linked", "--overwrite", "--epochs", "1",
            "-w", old_ws)
    one_line_error(r, "symbolic link", "never follows links", code=1)
    (old_ws / "sets" / "linked").symlink_to(old_ws / "sets" / "tiny-fgsm-eps8-n8", target_is_directory=True)
    before = snapshot(tmp_path)
    with pytest.raises(RobenchError, match="symbolic link"):
        store.SetWriter(store.set_dir("linked", old_ws), overwrite=True)
    assert snapshot(tmp_path) == before


def test_an_unwritable_workspace_is_found_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = run("train", "tiny", "--dataset", "digits", "--epochs", "50", "-w", blocker / "ws")
    one_line_error(r, "cannot write", "is not a folder", code=1)
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        one_line_error(run("train", "tiny", "--dataset", "digits", "--epochs", "50", "-w", ro), "not writable")


def test_import_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken_net.py").write_text("def net(:\n    pass\n")
    r = run("import", "x", "--from", "python:broken_net:net", "--dataset", "digits", "-w", tmp_path / "ws")
    one_line_error(r, "syntax error", "broken_net.py line 1", code=1)
    r = run("import", "x", "--from", "timm:x", "--dataset", "digits", "--class-map", tmp_path, "-w", tmp_path / "ws")
    one_line_error(r, "--class-map", "is a folder", code=2)
    assert not (tmp_path / "ws").exists()
    sys.modules.pop("broken_net", None)


# ---------------------------------------------------------------- conventions (issue 20)


def test_an_option_given_twice_is_refused(tmp_path):
    one_line_error(run("matrix", "-o", tmp_path / "a.csv", "-o", tmp_path / "b.json"), "--out", "given 2 times",
                   code=2)
    one_line_error(run("scores", "noise", "--n", "3", "--n", "4"), "given 2 times", code=2)
    assert not list(tmp_path.iterdir())


def test_same_mistake_same_exit_code():
    """A malformed list of numbers is a usage error (2) whichever option holds it."""
    for args in (["scores", "noise", "--sigmas", "x"], ["scores", "shuffle", "--k", "2,x"],
                 ["import", "x", "--from", "timm:x", "--dataset", "digits", "--mean", "a"],
                 ["train", "tiny", "--milestones", "1,b"], ["scores", "noise", "--n", "many"]):
        one_line_error(run(*args), "Invalid value", code=2)


def test_verbosity_after_the_subcommand(tmp_path):
    for flag in ("-v", "--verbose", "-q", "--quiet"):
        assert run("models", "-w", tmp_path, flag).exit_code == 0
    assert "no models" in run("models", "-w", tmp_path).stderr
    assert run("models", "-w", tmp_path, "-q").stderr == ""  # quiet: notes hidden ...
    one_line_error(run("sets", "-w", tmp_path / "x", "-q", "-f", "json", "-o", tmp_path), "is a folder")  # errors not


def test_summaries_are_whole_sentences_and_metavars_plain():
    for path, command in commands():
        if command.help:
            summary = command.get_short_help_str(45)
            assert summary.endswith(".") and not summary.endswith("..."), (path, summary)
    text = "".join(run(*path, "--help").stdout for path, _ in commands())
    assert "<list[" not in text and "-s, --source NAME" in " ".join(run("attack", "--help").stdout.split())


def test_logs_off_a_terminal_are_plain_unwrapped_lines(tmp_path, capsys):
    from robench.cli.render import Bars, setup_logging

    long_path = "/".join(["folder"] * 40)
    setup_logging(verbose=True)
    logging.getLogger("robench.test").info("wrote %s", long_path)
    with Bars("scoring") as bars:
        bars("start", {"total": 3})
        bars("batch", {"done": 2, "info": "x"})
        bars("end", {"done": 3})
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == f"INFO: wrote {long_path}"
    assert len(lines) == 2 and lines[1].startswith("scoring 3/3 in ")
    setup_logging()
