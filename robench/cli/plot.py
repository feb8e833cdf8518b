"""`robench plot ...`: the papers' figures, computed or drawn from a file written by --out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from robench.cli.matrix import VALUE, compute_matrix, read_frame
from robench.cli.options import (
    CI_STYLE,
    DEVICE,
    DPI,
    FIGURE_FORMAT,
    FIGURE_OUT,
    MIN_N,
    MODEL,
    MODELS,
    SEED,
    SETS,
    SHOW_N,
    TARGETS,
    WORKSPACE,
    CiStyle,
    FigureFormat,
    Value,
)
from robench.cli.render import cli_errors, deprecated
from robench.cli.score_commands import FROM, draw_figure, figure_path, plot_command, with_run_options
from robench.cli.scores import SCORES
from robench.workspace import check_selection, resolve_set

plot_app = typer.Typer(no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]},
                       help="The papers' figures: heatmap, noise, shuffle, tradeoff, folder, examples (PNG, SVG, "
                            "PDF or EPS, from the file's suffix).")


def register(app: typer.Typer) -> None:
    app.add_typer(plot_app, name="plot")


@plot_app.command("heatmap")
@with_run_options(rates=True)
def plot_heatmap(
    source_file: Path = FROM,
    models: str = MODELS,
    sets: str = SETS,
    cell: Value = VALUE,
    min_n: int = MIN_N,
    show_n: bool = SHOW_N,
    ci_style: CiStyle = CI_STYLE,
    out_path: Path = FIGURE_OUT,
    fmt: FigureFormat = FIGURE_FORMAT,
    dpi: int = DPI,
    targets: str = TARGETS,
    **run: Any,
) -> None:
    """The matrix as a heatmap per attack configuration (targets x sources, % defended)."""
    models = deprecated(models, targets, "--targets", "--models")
    if not source_file:
        check_selection(run["workspace"], models=models, sets=sets)  # a typo is answered before torch loads
    target = figure_path(out_path, fmt, "heatmap")
    if source_file:
        df = read_frame(source_file, ["target", "source", "set", "attack", "relation", "n", cell,
                                      "target_clean_accuracy"])
    else:
        df = compute_matrix(models=models, sets=sets, **run)
    from robench.reports import plots

    draw_figure(target, fmt, lambda where, f: plots.heatmap(df, where, cell, fmt=f, dpi=dpi, min_n=min_n,
                                                            show_n=show_n, ci=ci_style))


# noise, shuffle, tradeoff, folder: the figures of `robench scores X`, with its options
for _score in SCORES.values():
    if _score.figure:
        plot_app.command(_score.name)(plot_command(_score))


@plot_app.command("examples")
@cli_errors
def plot_examples(
    set_name: str = typer.Argument(..., help="The adversarial set to show."),
    models: str = typer.Option(None, "--models", "-M", help="Show this model's predictions (one name or a pattern "
                                                            "matching one; default: the source's)."),
    n: int = typer.Option(8, "--n", "-n", help="How many examples."),
    seed: int = SEED,
    out_path: Path = FIGURE_OUT,
    fmt: FigureFormat = FIGURE_FORMAT,
    dpi: int = DPI,
    workspace: Path = WORKSPACE,
    device: str = DEVICE,
    model: str = MODEL,
) -> None:
    """Clean vs adversarial examples with true and predicted labels (class names where the data has them), and
    the perturbation (rescaled)."""
    models = deprecated(models, model, "--model", "--models")
    resolve_set(set_name, workspace)  # a typo is answered before torch loads
    check_selection(workspace, models=models)
    from robench.scoring import set_examples

    draw_figure(figure_path(out_path, fmt, "examples"), fmt, lambda where, f: set_examples(
        set_name, where, workspace=workspace, models=models, n=n, seed=seed, device=device, fmt=f, dpi=dpi))
