"""The examples users copy: the package docstring runs; the README's Python calls match the functions'
signatures; every `robench ...` command line in the README uses options the CLI has."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

import robench
from robench.cli.app import app

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.S)


def docstring_code(doc: str) -> str:
    """The indented literal block after '::' in a docstring."""
    block = doc.split("::", 1)[1]
    lines = [line for line in block.splitlines() if line.strip()]
    indent = min(len(line) - len(line.lstrip()) for line in lines)
    return "\n".join(line[indent:] for line in lines)


def robench_calls(code: str):
    """(dotted name, call node) of every call to a robench function in ``code``."""
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Call) and ast.unparse(node.func).startswith("robench."):
            yield ast.unparse(node.func), node


def resolve(dotted: str):
    obj = importlib.import_module("robench")
    for part in dotted.split(".")[1:]:
        obj = getattr(obj, part)
    return obj


def test_package_docstring_example_runs(tmp_path, monkeypatch):
    """Run as written (in a fresh folder), with one epoch so the test stays short."""
    monkeypatch.chdir(tmp_path)
    real = robench.train
    monkeypatch.setattr(robench, "train", lambda *a, **k: real(*a, **{**k, "epochs": 1, "device": "cpu"}))
    scope: dict = {}
    exec(docstring_code(robench.__doc__), scope)  # noqa: S102
    assert scope["record"].name == "tiny-keep0.3-bottom" and scope["model"].robench_record == scope["record"]
    assert list(scope["df"]["target"]) == ["tiny-keep0.3-bottom"] and scope["df"]["relation"].iloc[0] == "white-box"


CALLS = [(dotted, node) for block in python_blocks(README) for dotted, node in robench_calls(block)]


@pytest.mark.parametrize("dotted,node", CALLS, ids=[f"{d}:{n.lineno}" for d, n in CALLS])
def test_readme_python_calls_match_the_signatures(dotted, node):
    signature = inspect.signature(resolve(dotted))
    signature.bind(*[object()] * len(node.args), **{k.arg: object() for k in node.keywords})  # TypeError if not


def command_lines(text: str) -> list[list[str]]:
    """The argument lists of every `robench ...` command line in the text (comments dropped)."""
    found = []
    text = re.sub(r"\\\n\s*", " ", text)  # continued lines
    for line in text.splitlines():
        match = re.match(r"(?:\s{2,}|\$ )robench (.*)", line)  # in code blocks: indented or after a prompt
        if match:
            lexer = shlex.shlex(match.group(1), posix=True, punctuation_chars="|><;&")
            lexer.commenters = "#"
            tokens = list(lexer)
            stop = next((i for i, t in enumerate(tokens) if set(t) <= set("|><;&")), len(tokens))
            found.append(tokens[:stop])  # up to a pipe or a redirection
    return found


COMMANDS = command_lines(README)


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(a) for a in COMMANDS])
def test_readme_commands_use_real_options(args):
    """Parsed (options and subcommands checked) up to --help, so nothing runs."""
    r = CliRunner().invoke(app, [*args, "--help"])
    assert r.exit_code == 0, r.output
