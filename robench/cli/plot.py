"""`robench plot ...`: the papers' figures, computed or drawn from a file written by --out."""

from __future__ import annotations

from pathlib import Path

import typer

from robench.cli.matrix import compute_matrix, read_frame
from robench.cli.options import (
    CI_STYLE,
    DATA_DIR,
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
    WORKERS,
    WORKSPACE,
    CiStyle,
    FigureFormat,
    Value,
    value,
)
from robench.cli.render import Bars, check_out, cli_errors, deprecated, err, figure_target
from robench.cli.scores import N
from robench.errors import RobenchError

FROM = typer.Option(None, "--from", help="Draw from a CSV or JSON written by the matching --out (- for stdin) "
                                         "instead of computing.")

plot_app = typer.Typer(no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]},
                       help="The papers' figures: heatmap, noise, shuffle, tradeoff, folder, examples (PNG, SVG, "
                            "PDF or EPS, from the file's suffix).")


def register(app: typer.Typer) -> None:
    app.add_typer(plot_app, name="plot")


def _target(out_path: Path | None, fmt: FigureFormat | None, default: str) -> Path:
    """The figure's destination: --out (- for stdout), else ./<figure>.<format>; checked before any work."""
    target = out_path if out_path is not None else Path(default)
    check_out(figure=target, figure_format=value(fmt))
    return target


def _draw(target: Path, fmt: FigureFormat | None, render) -> None:
    """Draw to the target or, for -, to stdout; note where it went."""
    with figure_target(target, value(fmt)) as where:
        written = render(where, value(fmt))
    if isinstance(written, Path):
        err.print(f"wrote {written}", highlight=False)


@plot_app.command("heatmap")
@cli_errors
def plot_heatmap(
    source_file: Path = FROM,
    models: str = MODELS,
    sets: str = SETS,
    cell: Value = typer.Option("defense_rate", "--value", help="Cell value."),
    min_n: int = MIN_N,
    show_n: bool = SHOW_N,
    ci_style: CiStyle = CI_STYLE,
    out_path: Path = FIGURE_OUT,
    fmt: FigureFormat = FIGURE_FORMAT,
    dpi: int = DPI,
    workspace: Path = WORKSPACE,
    device: str = DEVICE,
    data_dir: Path = DATA_DIR,
    targets: str = TARGETS,
) -> None:
    """The matrix as a heatmap per attack configuration (targets x sources, % defended)."""
    from robench.reports import plots

    models = deprecated(models, targets, "--targets", "--models")
    target = _target(out_path, fmt, "heatmap")
    if source_file:
        df = read_frame(source_file, ["target", "source", "set", "attack", "relation", "n", value(cell),
                                      "target_clean_accuracy"])
    else:
        df = compute_matrix(workspace, models, sets, device, data_dir)
    _draw(target, fmt, lambda where, f: plots.heatmap(df, where, value(cell), fmt=f, dpi=dpi,
                                                                    min_n=min_n, show_n=show_n,
                                                                    ci=value(ci_style)))


def _curve_command(kind: str, doc: str):
    """`robench plot noise` / `plot shuffle`: one command per corruption curve, drawn from a file or computed."""

    @cli_errors
    def command(
        source_file: Path = FROM,
        models: str = MODELS,
        n: int = N,
        seed: int = SEED,
        out_path: Path = FIGURE_OUT,
        fmt: FigureFormat = FIGURE_FORMAT,
        dpi: int = DPI,
        workspace: Path = WORKSPACE,
        device: str = DEVICE,
        data_dir: Path = DATA_DIR,
    ) -> None:
        from robench import scoring
        from robench.reports import plots

        target = _target(out_path, fmt, kind)
        if source_file:
            df = read_frame(source_file, ["model", {"noise": "sigma", "shuffle": "k"}[kind], "accuracy"])
        else:
            with Bars() as bars:
                df = getattr(scoring, f"{kind}_curve")(models=models, workspace=workspace, n=n, seed=seed,
                                                       device=device, data_dir=data_dir, callback=bars)
        _draw(target, fmt, lambda where, f: getattr(plots, f"{kind}_plot")(df, where, fmt=f, dpi=dpi))

    command.__doc__ = doc
    plot_app.command(kind)(command)
    return command


plot_noise = _curve_command("noise", "Accuracy against Gaussian-noise sigma, one line per model.")
plot_shuffle = _curve_command("shuffle", "Accuracy against patch-grid size k, one line per model.")


@plot_app.command("tradeoff")
@cli_errors
def plot_tradeoff(
    set_name: str = typer.Option(None, "--set", help="The adversarial set (needed unless --from)."),
    source_file: Path = FROM,
    models: str = MODELS,
    out_path: Path = FIGURE_OUT,
    fmt: FigureFormat = FIGURE_FORMAT,
    dpi: int = DPI,
    workspace: Path = WORKSPACE,
    device: str = DEVICE,
    data_dir: Path = DATA_DIR,
) -> None:
    """Defense rate and clean accuracy against keep probability."""
    from robench.reports import plots
    from robench.scoring import tradeoff

    target = _target(out_path, fmt, "tradeoff")
    if source_file:
        df = read_frame(source_file, ["keep", "defense_rate", "clean_accuracy"])
    elif set_name:
        with Bars() as bars:
            df = tradeoff(set_name, models, workspace, device=device, data_dir=data_dir, callback=bars)
    else:
        raise RobenchError("pass --set NAME (the set to defend against) or --from a CSV of `robench scores tradeoff`")
    title = f"keep trade-off against {set_name}" if set_name else None
    _draw(target, fmt, lambda where, f: plots.tradeoff_plot(df, where, title, fmt=f, dpi=dpi))


@plot_app.command("folder")
@cli_errors
def plot_folder(
    data_dir: Path = typer.Option(None, "--data-dir", help="The test-only folder (needed unless --from)."),
    source_file: Path = FROM,
    models: str = MODELS,
    n: int = N,
    seed: int = SEED,
    out_path: Path = FIGURE_OUT,
    fmt: FigureFormat = FIGURE_FORMAT,
    dpi: int = DPI,
    workspace: Path = WORKSPACE,
    device: str = DEVICE,
    workers: int = WORKERS,
) -> None:
    """Accuracy on a test-only folder (e.g. Stylized-ImageNet) beside clean accuracy, per model."""
    from robench.reports import plots
    from robench.scoring import folder_scores

    target = _target(out_path, fmt, "folder")
    if source_file:
        df = read_frame(source_file, ["model", "accuracy", "clean_accuracy"])
    elif data_dir:
        with Bars() as bars:
            df = folder_scores(models, workspace, data_dir=data_dir, n=n, seed=seed, device=device, workers=workers,
                               callback=bars)
    else:
        raise RobenchError("pass --data-dir FOLDER (the test-only folder) or --from a CSV of `robench scores folder`")
    _draw(target, fmt, lambda where, f: plots.folder_plot(df, where, fmt=f, dpi=dpi))


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
    from robench.scoring import set_examples

    models = deprecated(models, model, "--model", "--models")
    _draw(_target(out_path, fmt, "examples"), fmt, lambda where, f: set_examples(
        set_name, where, workspace=workspace, models=models, n=n, seed=seed, device=device, fmt=f, dpi=dpi))
