"""`robench scores X` and `robench plot X` are made from one definition per score: the same options (walked in the
click tree), the same figure (byte for byte), and the same names as a suite's ``[[scores]]`` entry."""

from __future__ import annotations

import pytest
import typer
from test_matrix import copy_models, fgsm_set
from typer.main import get_command
from typer.testing import CliRunner

from robench.cli.app import app
from robench.cli.options import SEED
from robench.cli.score_commands import Score, plot_command, scores_command

runner = CliRunner()
TREE = get_command(app)
SCORES, PLOTS = TREE.commands["scores"].commands, TREE.commands["plot"].commands
BOTH = sorted(set(SCORES) & set(PLOTS))
TABLE_OWN = {"out_path", "fmt", "plot"}  # scores X: the table's --out/--format and --plot
FIGURE_OWN = {"source_file", "out_path", "fmt"}  # plot X: --from and the figure's --out/--format


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def described(param) -> dict:
    """What a user sees of an option: its flags, type, default, env var, help, visibility."""
    return {"opts": param.opts, "secondary": param.secondary_opts, "type": param.type_descriptor.annotation,
            "range": (param.min, param.max), "flag": param.is_flag, "default": param.default,
            "required": param.required, "envvar": param.envvar, "help": param.help,
            "hidden": param.hidden, "metavar": param.metavar}


def shared(command, own: set[str]) -> dict:
    return {p.name: described(p) for p in command.params if p.name not in own | {"verbose", "quiet"}}


def test_every_figure_of_a_score_is_in_both_commands():
    assert BOTH == ["folder", "noise", "shuffle", "tradeoff"]
    assert set(PLOTS) - set(SCORES) == {"heatmap", "examples"}  # figures of other commands


@pytest.mark.parametrize("name", BOTH)
def test_plot_and_scores_take_the_same_options_with_the_same_defaults(name):
    in_scores, in_plot = shared(SCORES[name], TABLE_OWN), shared(PLOTS[name], FIGURE_OWN)
    assert list(in_scores) == list(in_plot)
    for option, seen in in_scores.items():
        drawn = in_plot[option]
        if seen["required"]:  # plot X can draw --from a file instead: there it is needed unless --from
            assert (drawn["required"], drawn["default"]) == (False, None), option
            assert drawn["help"] == seen["help"].rstrip(".") + " (needed unless --from).", option
            seen, drawn = ({k: v for k, v in d.items() if k not in ("required", "default", "help")}
                           for d in (seen, drawn))
        assert drawn == seen, option
    # the options the two had drifted on
    assert {"precision", "workers", "dpi"} <= set(in_plot)
    assert name != "noise" or "sigmas" in in_plot


def test_an_option_added_to_a_score_appears_in_both_commands():
    def toy(models: str = "*", level: int = typer.Option(3, "--level", help="A new option."), seed: int = SEED,
            **run):
        """A toy score."""

    score = Score(toy, lambda df, o: "toy", figure="noise_plot")
    group = typer.Typer()
    group.command("scores")(scores_command(score))
    group.command("plot")(plot_command(score))
    commands = get_command(group).commands
    for command in commands.values():
        level = next(p for p in command.params if p.name == "level")
        assert (level.opts, level.default, level.help) == (["--level"], 3, "A new option.")
    assert [p.name for p in commands["plot"].params][:2] == ["source_file", "models"]


@pytest.fixture(scope="module")
def cli_ws(trained_ws, tmp_path_factory) -> str:
    ws = copy_models(trained_ws, tmp_path_factory.mktemp("cli-scores"))
    fgsm_set(ws, "tiny", "fgsm-tiny", eps=0.1)
    return ws


@pytest.mark.parametrize("name,options", [
    ("noise", ["--sigmas", "0,0.2", "-n", "30", "--seed", "3", "--all-images", "--workers", "0", "--ci", "none"]),
    ("tradeoff", ["--set", "fgsm-tiny", "--precision", "fp32", "--workers", "0"]),
])
def test_the_figure_is_the_same_through_both_commands(cli_ws, tmp_path, name, options):
    table, through_scores, through_plot = tmp_path / "t.csv", tmp_path / "scores.png", tmp_path / "plot.png"
    r = run("scores", name, "-w", cli_ws, *options, "--out", table, "--plot", through_scores)
    assert r.exit_code == 0, r.output
    r = run("plot", name, "-w", cli_ws, *options, "-o", through_plot)
    assert r.exit_code == 0, r.output
    assert r.stdout == "" and f"wrote {through_plot}" in r.stderr
    png = through_scores.read_bytes()
    assert png.startswith(b"\x89PNG") and through_plot.read_bytes() == png
    redrawn = tmp_path / "from.png"
    assert run("plot", name, "--from", table, "-o", redrawn).exit_code == 0
    if name == "noise":  # the file holds all the figure shows (the trade-off's title names the set, the file not)
        assert redrawn.read_bytes() == png


def test_the_options_pass_through_plot(cli_ws, tmp_path):
    """The sigmas and the sample given to `plot noise` are the ones drawn (the legend and axis of the SVG)."""
    svg = tmp_path / "noise.svg"
    r = run("plot", "noise", "-w", cli_ws, "--sigmas", "0,0.25", "-n", "17", "--all-images", "-o", svg)
    assert r.exit_code == 0, r.output
    text = svg.read_text()
    assert "on 17 images" in text and "0.25" in text


# a suite's [[scores]] keys are the library's keywords; the CLI's options are named the same but these
SUITE_NAMES = {"all_images": "common", "set_name": "set"}
SUITE_ONLY = {"kind", "out"}
CLI_ONLY = {"workspace", "device", "fmt", "out_path", "verbose", "quiet"}


@pytest.mark.parametrize("name", sorted(SCORES))
def test_a_suite_entry_and_the_command_use_the_same_names(name):
    from robench.cli.scores import SCORES as DEFINED
    from robench.suites import score_fields
    from robench.suites.schema import SCORES as IN_SUITES

    assert DEFINED[name].figure == IN_SUITES[name][1]  # a suite's entry draws the same figure

    options = {SUITE_NAMES.get(p.name, p.name) for p in SCORES[name].params if p.name not in CLI_ONLY}
    if name == "boundary":  # --steps and --tolerance are the attack's, passed as params
        options = options - {"steps", "tolerance"} | {"params"}
    assert options == set(score_fields(name)) - SUITE_ONLY


def test_the_heatmap_takes_the_options_of_the_matrix_it_computes():
    """`plot heatmap` computes what `matrix --plot` draws: each of its options is the matrix's, the same."""
    in_matrix, in_heatmap = shared(TREE.commands["matrix"], TABLE_OWN), shared(PLOTS["heatmap"], FIGURE_OWN)
    assert {n: in_matrix.get(n) for n in in_heatmap} == in_heatmap
    assert {"precision", "workers", "ci", "ci_level"} <= set(in_heatmap)
    # what only the matrix does: its cache, batching, shards and the replicate aggregate
    assert set(in_matrix) - set(in_heatmap) == {"no_cache", "batch_size", "shard", "by_config"}
