"""The examples users copy, and the documentation site: the package docstring runs; the Python calls in the README
and docs/ match the functions' signatures; every `robench ...` command line there uses options the CLI has, and the
cheap ones run; the site builds with `mkdocs build --strict`, and its generated reference lists every command,
option and suite key the code has."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import shlex
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

import robench
from robench.cli.app import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
# the pages users read: the README and every Markdown page of the documentation site
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
DOCS = {str(f.relative_to(ROOT)): f.read_text() for f in DOC_FILES}


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


CALLS = [(name, dotted, node) for name, text in DOCS.items() for block in python_blocks(text)
         for dotted, node in robench_calls(block)]


@pytest.mark.parametrize("name,dotted,node", CALLS, ids=[f"{f}:{d}:{n.lineno}" for f, d, n in CALLS])
def test_python_calls_match_the_signatures(name, dotted, node):
    signature = inspect.signature(resolve(dotted))
    signature.bind(*[object()] * len(node.args), **{k.arg: object() for k in node.keywords})  # TypeError if not


def code_lines(text: str):
    """The lines of a Markdown text's fenced and indented code blocks (continued lines joined)."""
    fenced, block_may_start = False, True
    for line in re.sub(r"\\\n\s*", " ", text).splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif fenced or (line.startswith("    ") and block_may_start):
            yield line
        block_may_start = not line.strip() or (block_may_start and line.startswith("    ") and not fenced)


def command_lines(text: str) -> list[list[str]]:
    """The argument lists of every `robench ...` command line in the text's code blocks (comments dropped)."""
    found = []
    for line in code_lines(text):
        match = re.match(r"\s*(?:\$ )?robench (.*)", line)  # as typed, or after a prompt
        if match:
            lexer = shlex.shlex(match.group(1), posix=True, punctuation_chars="|><;&")
            lexer.commenters = "#"
            lexer.wordchars += ":,@%+"  # torchvision:resnet18, 0.1,0.2: one argument each, as a shell reads them
            tokens = list(lexer)
            stop = next((i for i, t in enumerate(tokens) if set(t) <= set("|><;&")), len(tokens))
            found.append(tokens[:stop])  # up to a pipe or a redirection
    return found


COMMANDS = [(name, args) for name, text in DOCS.items() for args in command_lines(text)]


def test_the_docs_show_command_lines():
    """The scanner finds the command lines of every page that has them (a broken regex would pass every test)."""
    pages = {name for name, _ in COMMANDS}
    assert {"README.md", "docs/getting-started.md", "docs/guides/attacks.md", "docs/guides/suites.md"} <= pages
    assert len(COMMANDS) > 40


@pytest.mark.parametrize("name,args", COMMANDS, ids=[f"{n}: {' '.join(a)}" for n, a in COMMANDS])
def test_doc_commands_use_real_options(name, args):
    """Parsed (options, choices and subcommands checked) up to --help, so nothing runs."""
    r = CliRunner().invoke(app, [*args, "--help"])
    assert r.exit_code == 0, f"{name}: robench {' '.join(args)}\n{r.output}"


def cheap(args: list[str]) -> bool:
    """Command lines that run in a moment with no data: help, version, listings and plans."""
    return bool({"--help", "-h", "--version", "-V", "--dry-run"} & set(args)) or args[:1] in (["models"], ["sets"])


CHEAP = [(name, args) for name, args in COMMANDS if cheap(args)]


def test_some_doc_commands_are_cheap():
    assert {tuple(a[:1]) for _, a in CHEAP} >= {("models",), ("sets",), ("run",)}


@pytest.mark.parametrize("name,args", CHEAP, ids=[f"{n}: {' '.join(a)}" for n, a in CHEAP])
def test_cheap_doc_commands_run(name, args, tmp_path, monkeypatch):
    """Run as shown, from an empty folder (paths into the repository, such as shipped suites, made absolute)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ROBENCH_WORKSPACE", raising=False)
    args = [str(ROOT / a) if "/" in a and (ROOT / a).exists() else a for a in args]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, f"{name}: robench {' '.join(args)}\n{r.output}"


def test_readme_is_short():
    """The README is the front door (what robench is, install, test, demo, a first study); the manual is docs/."""
    assert len(README.encode()) < 8 * 1024
    for section in ("## Install", "## Test", "robench demo", "--dataset folder"):
        assert section in README


def test_readme_links_resolve():
    """The README's relative links and images point at files of the repository (mkdocs checks the pages of docs/)."""
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README)
    local = [t for t in targets if "://" not in t]
    assert "docs/assets/demo-matrix.png" in local and len(local) > 10
    for target in local:
        assert (ROOT / target).is_file(), target


def table_names(page: str, header: str) -> set[str]:
    """The backticked names in the first cells of the table whose header row starts with ``header``."""
    text = DOCS[page]
    start = text.index(header)
    rows = text[start:].split("\n\n", 1)[0].splitlines()[2:]
    return {name for row in rows for name in re.findall(r"`([^`]+)`", row.split(" | ", 1)[0])}


def registries():
    """(page, table header, the names the table must list) for the guides' hand-written tables."""
    from robench.attacks import list_methods
    from robench.datasets import list_datasets
    from robench.importers import FORMS
    from robench.models import list_models
    from robench.training import PRESETS

    return [("docs/guides/attacks.md", "| method |", set(list_methods())),
            ("docs/guides/training.md", "| name | default width |", set(list_models())),
            ("docs/guides/training.md", "| preset |", set(PRESETS)),
            ("docs/guides/own-data.md", "| name | what | offline? |", set(list_datasets())),
            ("docs/guides/own-models.md", "| form |", set(FORMS))]


def test_guide_tables_list_every_registered_name():
    """A new method, architecture, preset, dataset or import form needs its row in the guides (and a gone one loses
    it)."""
    for page, header, names in registries():
        assert table_names(page, header) == names, (page, header)


def test_training_guide_lists_every_train_option():
    listed = {flag for flag in re.findall(r"(--[\w-]+)", " ".join(
        row.split(" | ", 1)[0] for row in DOCS["docs/guides/training.md"].split("| option | meaning |")[1]
        .split("\n\n", 1)[0].splitlines()[2:]))}
    train = typer.main.get_command(app).commands["train"]
    options = {o for p in train.params if p.param_type_name == "option" and not p.hidden
               for o in [*p.opts, *p.secondary_opts] if o.startswith("--")} - {"--help"}
    assert listed == options


def test_demo_figures_come_from_one_run():
    """The committed demo CSV (the source of docs/assets/demo-matrix.png) and the demo output shown in Getting
    started are the same run: every cell and clean accuracy of the CSV is in the printed tables."""
    import pandas as pd

    df = pd.read_csv(ROOT / "docs" / "assets" / "demo-matrix.csv")
    shown = DOCS["docs/getting-started.md"]
    assert len(df) == 8
    for row in df.itertuples():
        line = next(t for t in shown.splitlines() if t.startswith(f"│ {row.target} ") and
                    f"{100 * row.defense_rate:.2f}" in t)
        assert f"{100 * row.target_clean_accuracy:.2f}" in line
