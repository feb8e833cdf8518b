"""`robench attack` / `robench sets` through Typer's runner, including bad input."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import robench
from robench.attacks import list_methods
from robench.cli.app import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def src(trained_ws: str, name: str = "tiny") -> str:
    return str(Path(trained_ws) / "models" / name)


def no_set_left(ws: str) -> bool:
    root = Path(ws) / "sets"
    return not root.exists() or not any(root.iterdir())  # hidden temporary folders count too


def test_attack_then_sets(trained_ws, ws):
    r = run("attack", "--source", src(trained_ws), "--method", "pgd", "--eps", "8/255", "--step", "0.004",
            "--steps", "3", "--n", "24", "--workspace", ws)
    assert r.exit_code == 0, r.output
    assert "tiny-pgd-eps8-step1.02-steps3-n24" in r.stdout and "Traceback" not in r.output
    s = robench.load_set("tiny-pgd-eps8-step1.02-steps3-n24", ws)
    assert s.record.params["eps"] == pytest.approx(8 / 255) and s.record.params["step"] == 0.004
    assert s.adv.dtype == torch.float32 and (s.linf <= 8 / 255 + 1e-6).all()
    r = run("sets", "--workspace", ws)
    assert r.exit_code == 0 and "tiny-pgd-eps8" in r.stdout and "8/255" in r.stdout


def test_ensemble_and_method_params(trained_ws, ws):
    r = run("attack", "-s", src(trained_ws), "-s", src(trained_ws, "tiny-keep0.3-bottom"), "-m", "cw",
            "--confidence", "0.5", "--steps", "5", "-p", "binary_search_steps=1", "--n", "16", "-w", ws)
    assert r.exit_code == 0, r.output
    name = "tiny+tiny-keep0.3-bottom-cw-conf0.5-steps5-bss1-n16"
    rec = robench.load_set(name, ws).record
    assert rec.params["confidence"] == 0.5 and rec.params["binary_search_steps"] == 1
    assert len(rec.sources) == 2


def test_targeted_l2_and_transfer_options(trained_ws, ws):
    r = run("attack", "-s", src(trained_ws), "-m", "pgd", "--norm", "l2", "--eps", "1.5", "--steps", "3",
            "--target", "least-likely", "--n", "16", "-w", ws)
    assert r.exit_code == 0, r.output
    name = "tiny-pgd-l2-eps1.5-steps3-targeted-least-likely-n16"
    rec = robench.load_set(name, ws).record
    assert rec.params["norm"] == "l2" and rec.target == "least-likely" and "norm=l2" in r.stdout
    r = run("attack", "-s", src(trained_ws), "-m", "mdti", "--kernel", "5", "--diversity", "1", "--steps", "3",
            "--n", "16", "-w", ws)
    assert r.exit_code == 0, r.output
    rec = robench.load_set("tiny-mdti-eps16-steps3-diversity1-kernel5-n16", ws).record
    assert rec.params["kernel"] == 5 and rec.params["diversity"] == 1.0 and rec.backend == "robench"
    r = run("sets", "-w", ws)
    assert "1.5 (L2)" in r.stdout and "least-likely" in r.stdout


def test_help_comes_from_the_registry():
    r = run("attack", "--help")
    assert r.exit_code == 0
    for method in list_methods():
        assert f"{method}:" in r.output


@pytest.mark.parametrize("method", list_methods())
def test_help_defaults_are_the_default_norms(method):
    """Each method's help shows the defaults it runs with under its default norm (HopSkipJump's is L2: eps 0.5),
    and the other norm's eps where they differ."""
    from robench.attacks.registry import method_spec, resolve_params
    from robench.cli.attack import _methods_help

    line = next(x for x in _methods_help().split("\n\n") if x.startswith(f"{method}:"))
    spec, resolved = method_spec(method), resolve_params(method_spec(method))
    if "eps" not in resolved:
        return
    shown = re.search(r"Defaults: [^.]*?\beps=(\d+/255|[\d.]*\d)", line).group(1)
    assert (f"{round(resolved['eps'] * 255)}/255" if resolved.get("norm", spec.norm) == "linf"
            else f"{resolved['eps']:g}") == shown
    others = [n for n in spec.supported_norms if n != spec.supported_norms[0]]
    if others and spec.l2_defaults:
        other = resolve_params(spec, norm=others[0])["eps"]
        assert f"Under --norm {others[0]}: eps={round(other * 255)}/255" in line if others[0] == "linf" else \
            f"Under --norm l2: eps={other:g}" in line


def test_empty_sets(ws):
    r = run("sets", "--workspace", ws)
    assert r.exit_code == 0 and "no sets" in r.output


@pytest.mark.parametrize("args,message", [
    (["--method", "pgdd"], "did you mean pgd"),
    (["--backend", "foolbx"], "did you mean foolbox"),
    (["--method", "boundary", "--backend", "art"], "does not implement boundary"),
    (["--method", "noise", "--backend", "art"], "does not implement noise"),
    (["--eps", "-0.1"], "--eps must be in [0, 1]"),
    (["--eps", "300/255"], "--eps must be in [0, 1]"),
    (["--eps", "sixteen"], "fraction like 16/255"),
    (["--method", "cw", "--eps", "0.1"], "cw takes no --eps"),
    (["--sigma", "0.1"], "pgd takes no --sigma"),
    (["--param", "steps"], "KEY=VALUE"),
    (["--param", "step=0.1"], "step has its own option, use --step instead"),
    (["--n", "0"], "expected a whole number >= 1"),
    (["--target", "10"], "--target 10 is out of range: the source's dataset has classes 0 to 9"),
    (["--method", "noise", "--target", "random"], "noise is untargeted only"),
    (["--method", "mifgsm", "--norm", "l2"], "mifgsm does not support --norm l2"),
    (["--method", "tifgsm", "--backend", "torchattacks", "--n", "4"], "takes 3-channel images only"),
])
def test_bad_input_is_one_line_no_traceback(trained_ws, ws, args, message):
    r = run("attack", "--source", src(trained_ws), *args, "--workspace", ws)
    assert r.exit_code != 0
    assert message in r.output
    assert "Traceback" not in r.output
    assert len(r.stderr.strip().splitlines()) == 1
    assert no_set_left(ws)


def test_missing_source(ws):
    r = run("attack", "--source", "densenet121", "--method", "pgd", "--workspace", ws)
    assert r.exit_code == 1 and "no model 'densenet121'" in r.output and "Traceback" not in r.output
    assert no_set_left(ws)


def test_unwritable_workspace(trained_ws, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    r = run("attack", "--source", src(trained_ws), "-m", "fgsm", "--n", "8", "--workspace", blocker / "ws")
    assert r.exit_code == 1 and "cannot write" in r.output and "Traceback" not in r.output


def test_existing_set_needs_overwrite(trained_ws, ws):
    args = ["attack", "--source", src(trained_ws), "-m", "fgsm", "--n", "8", "--workspace", ws]
    assert run(*args).exit_code == 0
    r = run(*args)
    assert r.exit_code == 1 and "already exists" in r.output and "--overwrite" in r.output
    assert run(*args, "--overwrite").exit_code == 0
    assert sorted(p.name for p in (Path(ws) / "sets").iterdir()) == ["tiny-fgsm-eps16-n8"]
