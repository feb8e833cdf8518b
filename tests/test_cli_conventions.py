"""The CLI as a Unix tool: --version, completion, choices from the registries, one meaning per short flag,
hidden old spellings, one-line usage errors, data on stdout (also for -o -), FIFOs written through, tidy JSON
that round-trips into the CSV's frame, figures by suffix, progress bars for every score."""

from __future__ import annotations

import io
import os
import re
import stat
import subprocess
import sys
from enum import Enum

import pandas as pd
import pytest
import torch
from test_cli_matrix import one_line_error, run
from test_files import FifoReader
from test_matrix import copy_models, fgsm_set, source_entry, write_set
from typer.main import get_command

from robench import store
from robench.cli import names
from robench.cli.app import app


@pytest.fixture(scope="module")
def cli_ws(trained_ws, tmp_path_factory) -> str:
    """The session's two trained models, an FGSM set against 'tiny' and a stored boundary set."""
    ws = copy_models(trained_ws, tmp_path_factory.mktemp("conventions"))
    fgsm_set(ws, "tiny", "fgsm-tiny", eps=0.1)
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(5, 1, 32, 32, generator=g)
    tensors = {"adv": (clean + 0.02 * torch.randn(clean.shape, generator=g)).clamp(0, 1), "clean": clean,
               "labels": torch.zeros(5, dtype=torch.long), "source_pred": torch.ones(5, dtype=torch.long),
               "indices": torch.arange(5)}
    for model in ("tiny", "tiny-keep0.3-bottom"):
        write_set(ws, f"boundary-{model}", tensors, [source_entry(store.read_model(model, ws))], method="boundary",
                  params={"steps": 10})
    return ws


def commands(command=None, path=()):
    """(path, click command) for every command of the app, groups included."""
    command = command or get_command(app)
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from commands(sub, (*path, name))


# ---------------------------------------------------------------- the app


def test_version_and_completion():
    for flag in ("--version", "-V"):
        r = run(flag)
        assert r.exit_code == 0 and r.stdout.strip() == "0.1.0"
    r = run("--help")
    assert "--install-completion" in r.stdout and "--show-completion" in r.stdout
    # which shell: named, not detected from the process tree (detection fails where no shell started the tests)
    env = {**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    r = subprocess.run([sys.executable, "-c", "from robench.cli.app import main; main()", "--show-completion",
                        "bash"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and "complete" in r.stdout and "_COMPLETE" in r.stdout


def test_help_keeps_brackets_and_lists_the_choices():
    text = " ".join(run("matrix", "--help").stdout.split())
    assert "[w] white" in text and "[g] gray" in text
    help_text = run("train", "--help").stdout + run("attack", "--help").stdout
    for values in (names.ARCHITECTURES, names.DATASETS, names.PRESETS, names.PLACEMENTS, names.MASK_MODES,
                   names.REGULARIZERS, names.METHODS, names.BACKENDS):
        assert all(v in help_text for v in values), values
    assert "resnet18: bottom = stem conv + layer1 + layer2" in help_text  # placements, from the registry


def test_choices_come_from_the_registries():
    """The CLI's name tables (readable without torch) agree with the live registries."""
    from robench import datasets, runtime, training
    from robench.attacks import generate, list_backends, list_methods, noise
    from robench.cli import attack, scores
    from robench.models import MASK_MODES, PLACEMENTS, REGULARIZERS, list_models, model_entry
    from robench.reports import plots
    from robench.scoring import probes

    assert names.ARCHITECTURES == tuple(list_models()) and names.METHODS == tuple(list_methods())
    assert names.DATASETS == tuple(datasets.list_datasets()) and names.AUGMENTS == tuple(datasets.AUGMENTS)
    assert names.PRESETS == tuple(training.PRESETS) and names.BACKENDS == tuple(list_backends())
    assert names.PRECISIONS == runtime.PRECISIONS
    assert (names.MASK_MODES, names.PLACEMENTS, names.REGULARIZERS) == (MASK_MODES, PLACEMENTS, REGULARIZERS)
    assert names.BOUNDARY_MODES == probes.BOUNDARY_MODES and names.FIGURE_FORMATS == plots.PLOT_FORMATS
    assert attack.DEFAULT_N == generate.DEFAULT_N and scores.CIFAR10C_SIGMAS == noise.CIFAR10C_SIGMAS
    from robench.importers import FORMS

    assert names.IMPORT_FORMS == tuple(FORMS.values())
    assert names.PLACEMENT_HELP == tuple((n, model_entry(n).bottom, model_entry(n).top) for n in list_models())


ALIASES = {"--targets": "--models", "--model": "--models"}  # hidden old spellings: the same meaning


def test_one_meaning_per_short_flag_and_one_name_for_models():
    meaning: dict[str, set[str]] = {}
    for path, command in commands():
        for param in command.params:
            longs = [o for o in param.opts + param.secondary_opts if o.startswith("--")]
            for short in (o for o in param.opts if len(o) == 2):
                meaning.setdefault(short, set()).add(ALIASES.get(longs[0], longs[0]) if longs else param.name)
            if param.hidden:
                assert set(longs) <= set(ALIASES), (path, longs)  # only old spellings are hidden
            else:
                assert not set(longs) & set(ALIASES), (path, longs)  # ... and never shown
    assert {s: m for s, m in meaning.items() if len(m) > 1} == {}
    assert meaning["-M"] == {"--models"} and meaning["-S"] == {"--sets"} and meaning["-s"] == {"--source"}
    assert meaning["-m"] == {"--method"} and meaning["-o"] == {"--out"} and meaning["-f"] == {"--format"}


def test_every_fixed_choice_is_an_enum():
    """Options with a fixed set of values are typed, so --help lists them and Typer checks them."""
    fixed = {"dataset", "preset", "placement", "mask", "regularizer", "augment", "method", "backend", "mode", "fmt",
             "cell", "arch"}
    for path, command in commands():
        for param in command.params:
            if param.name in fixed and (path, param.name) != (("import",), "arch"):  # import: also torchvision:X
                kind = param.type_descriptor.annotation
                assert isinstance(kind, type) and issubclass(kind, Enum), (path, param.name)


@pytest.mark.parametrize("args,needles", [
    (["attack", "-s", "x", "-m", "pgdd"], ["unknown --method 'pgdd'", "did you mean pgd", "attack --help"]),
    (["train", "tiny", "--mask", "pixel"], ["unknown --mask 'pixel'", "choose one of channel, neuron, shared"]),
    (["matrix", "--format", "html"], ["unknown --format 'html'"]),
    (["scores", "noise", "--n", "many"], ["'--n'"]),
    (["matrix", "--nope"], ["No such option: --nope"]),
    (["attack"], ["Missing option '--source'"]),
])
def test_usage_errors_are_one_line(args, needles):
    one_line_error(run(*args), *needles, code=2)


def test_old_spellings_are_hidden_but_work(cli_ws):
    r = run("matrix", "--targets", "tiny", "-w", cli_ws, "-f", "csv")
    assert r.exit_code == 0 and "--targets is deprecated" in r.stderr and "use --models" in r.stderr
    assert set(pd.read_csv(io.StringIO(r.stdout)).target) == {"tiny"}
    assert "--targets" not in run("matrix", "--help").stdout


# ---------------------------------------------------------------- data out


def test_dash_means_stdout_and_nothing_is_written(cli_ws, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = run("matrix", "-w", cli_ws, "-o", "-")
    assert r.exit_code == 0 and not (tmp_path / "-").exists()
    df = pd.read_csv(io.StringIO(r.stdout))  # only the data is on stdout
    assert len(df) == 6 and {"n", "relation"} <= set(df.columns)
    r = run("plot", "heatmap", "-w", cli_ws, "-o", "-", "-f", "svg")
    assert r.exit_code == 0 and r.stdout.lstrip().startswith("<?xml") and not list(tmp_path.iterdir())


def test_a_fifo_out_is_written_through(cli_ws, tmp_path):
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    reader = FifoReader(fifo)
    r = run("matrix", "-w", cli_ws, "-o", fifo)
    assert r.exit_code == 0, r.output
    assert len(pd.read_json(io.BytesIO(reader.result()), orient="records")) == 6
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_out_to_a_folder_is_one_line(cli_ws, tmp_path):
    one_line_error(run("matrix", "-w", cli_ws, "-o", tmp_path), "refusing to write", "is a folder")
    assert tmp_path.is_dir()


KINDS = [
    ("matrix",), ("models",), ("sets",), ("scores", "boundary", "--mode", "sets"),
    ("scores", "noise", "--sigmas", "0,0.1", "-n", "30"), ("scores", "shuffle", "--k", "2,4", "-n", "30"),
    ("scores", "tradeoff", "--set", "fgsm-tiny"),
]


@pytest.mark.parametrize("args", KINDS, ids=[" ".join(k[:2]) for k in KINDS])
def test_json_round_trips_into_the_csv_frame(cli_ws, tmp_path, args):
    r = run(*args, "-w", cli_ws, "-f", "json")
    assert r.exit_code == 0, r.output
    from_json = pd.read_json(io.StringIO(r.stdout), orient="records", dtype=False, precise_float=True)
    csv = tmp_path / "out.csv"
    assert run(*args, "-w", cli_ws, "-o", csv).exit_code == 0
    from_csv = pd.read_csv(csv)
    from_json = from_json.mask(from_json.eq(""))  # CSV cannot tell an empty string from a missing value
    pd.testing.assert_frame_equal(from_json, from_csv, check_exact=True, check_dtype=False)
    known = [c for c in from_csv.columns if from_csv[c].notna().any()]  # an all-empty column has no dtype in JSON
    assert from_json[known].dtypes.equals(from_csv[known].dtypes)
    assert len(from_json) >= 2 and "n" in from_json.columns or args[0] in ("models", "sets")
    if args[0] in ("matrix",) or "tradeoff" in args:
        assert {"n", "relation"} <= set(from_json.columns)


def test_markdown_and_latex_of_lists_and_scores(cli_ws):
    r = run("models", "-w", cli_ws, "-f", "markdown")
    assert r.exit_code == 0 and "| name " in r.stdout and "tiny-keep0.3-bottom" in r.stdout
    r = run("scores", "noise", "-w", cli_ws, "--sigmas", "0,0.1", "-n", "30", "-f", "latex")
    assert r.exit_code == 0 and "\\begin{tabular}{lrr}" in r.stdout and "sigma=0.1" in r.stdout


def test_figures_take_their_format_from_the_suffix(cli_ws, tmp_path):
    r = run("matrix", "-w", cli_ws, "--plot", tmp_path / "fig.pdf", "--dpi", "72")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "fig.pdf").read_bytes().startswith(b"%PDF-") and not (tmp_path / "fig.pdf.png").exists()
    r = run("scores", "noise", "-w", cli_ws, "--sigmas", "0,0.1", "-n", "30", "--plot", tmp_path / "noise.svg")
    assert r.exit_code == 0 and b"<svg" in (tmp_path / "noise.svg").read_bytes()[:2000]
    one_line_error(run("plot", "heatmap", "-w", cli_ws, "-o", tmp_path / "h.pdf", "-f", "svg"), "contradicts")


@pytest.mark.parametrize("args,label", [
    (("matrix",), "matrix"), (("scores", "boundary", "--mode", "sets"), "boundary score"),
    (("scores", "noise", "--sigmas", "0,0.1", "-n", "30"), "sigma curve"),
    (("scores", "shuffle", "--k", "2", "-n", "30"), "k curve"),
    (("scores", "tradeoff", "--set", "fgsm-tiny"), "matrix"), (("plot", "noise", "-n", "30"), "sigma curve"),
])
def test_every_score_shows_progress_with_a_total(cli_ws, tmp_path, args, label):
    extra = ["-o", tmp_path / "fig.png"] if args[0] == "plot" else []
    r = run(*args, "-w", cli_ws, *extra)
    assert r.exit_code == 0, r.output
    bar = next((line for line in r.stderr.splitlines() if line.startswith(label)), r.stderr)
    done, total = re.search(r" (\d+)/(\d+) ", bar).groups()
    assert int(done) == int(total) > 0, bar


def test_examples_show_class_names_from_the_record(cli_ws, monkeypatch, tmp_path):
    from dataclasses import replace

    from test_matrix import DIGITS, random_set

    from robench.reports import plots
    from robench.scoring import set_examples

    words = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
    record = store.read_model("tiny", cli_ws)
    random_set(cli_ws, "named", [source_entry(record)], n=4, dataset=replace(DIGITS, classes=words))
    drawn = []
    monkeypatch.setattr(plots, "save", lambda fig, *a, **k: drawn.append(fig) or tmp_path / "x.png")
    set_examples("named", tmp_path / "x.png", workspace=cli_ws, n=4)
    titles = " ".join(ax.get_title() for ax in drawn[0].axes)
    assert "true " in titles and any(f"true {w}" in titles for w in words) and "adv pred " in titles
    assert not any(f"true {d}" in titles for d in "0123456789")


HEAVY = ("torch", "torchvision", "numpy", "pandas", "matplotlib", "art", "foolbox", "sklearn", "safetensors", "PIL")


def test_help_and_usage_errors_import_no_heavy_library():
    """`robench --help`, every command's help and bad-argument errors import neither torch nor the attack or data
    libraries (they are imported by the commands that need them); the CPU time is in benchmarks/bench_cli.py."""
    code = "\n".join([
        "import sys", "import robench", "from typer.testing import CliRunner", "from robench.cli.app import app",
        "from typer.main import get_command",
        "paths = [[]] + [[n] for n in get_command(app).commands] + [['scores', 'noise'], ['plot', 'heatmap']]",
        "codes = [CliRunner().invoke(app, [*p, '--help']).exit_code for p in paths]",
        "codes += [CliRunner().invoke(app, a).exit_code for a in (['attack', '-s', 'x', '-m', 'pgdd'],",
        "          ['train', 'resnet19'], ['matrix', '--nope'], ['scores', 'noise', '--n', 'x'])]",
        f"print(codes, sorted(m for m in {HEAVY!r} if m in sys.modules))",
    ])
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    codes, heavy = result.stdout.strip().split("] [")
    assert set(codes.strip("[").split(", ")) >= {"0", "2"} and heavy == "]", result.stdout
