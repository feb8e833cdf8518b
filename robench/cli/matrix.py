"""`robench matrix` and `robench matrix merge`: score every target on every set."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from robench.cli.options import (
    CI,
    CI_LEVEL,
    CI_STYLE,
    DATA_DIR,
    DEVICE,
    DPI,
    FORMAT,
    MIN_N,
    MODELS,
    OUT,
    PLOT,
    PRECISION,
    SETS,
    SHOW_N,
    TARGETS,
    WORKERS,
    WORKSPACE,
    CiMethod,
    CiStyle,
    Format,
    Precision,
    Value,
    value,
)
from robench.cli.render import Bars, check_out, cli_errors, deprecated, err, output, show_matrix
from robench.errors import RobenchError
from robench.files import is_stdout

if TYPE_CHECKING:
    import pandas as pd

REQUIRED = ["target", "set", "source", "method", "attack", "params", "eps", "relation", "n"]
VALUE = typer.Option("defense_rate", "--value", help="Cell value of the tables and the heatmap.")


def register(app: typer.Typer) -> None:
    """Add `matrix` (with `matrix merge`) to the robench app."""
    matrix_app = typer.Typer(context_settings={"help_option_names": ["-h", "--help"]})  # help: matrix_cmd's doc
    matrix_app.callback(invoke_without_command=True)(matrix_cmd)
    matrix_app.command("merge")(merge_cmd)
    app.add_typer(matrix_app, name="matrix")


# ---------------------------------------------------------------- shared by matrix, scores and plot


def read_frame(path: Path, needed: list[str]) -> pd.DataFrame:
    """A tidy frame from a CSV or JSON file written by --out (or - for stdin)."""
    import sys

    import pandas as pd

    source = sys.stdin if is_stdout(path) else path
    try:
        if str(path).lower().endswith(".json"):
            df = pd.read_json(source, orient="records", dtype=False, precise_float=True)
        else:
            df = pd.read_csv(source)
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise RobenchError(f"cannot read {path} ({type(e).__name__}); pass a CSV or JSON written with --out") from None
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise RobenchError(f"{path} lacks column(s) {', '.join(missing)}; pass a file written by the matching --out")
    return df


def draw(plot: Path | None, render) -> None:
    """Draw the figure of a result to ``plot`` (--plot), if given."""
    if plot is None:
        return
    if is_stdout(plot):
        raise RobenchError("--plot - would mix the figure with the table on stdout; use `robench plot ... -o -`")
    err.print(f"wrote {render(plot)}", highlight=False)


def compute_matrix(workspace, models, sets, device, data_dir, use_cache: bool = True, batch_size: int = 512,
                   shard: str | None = None, precision: str = "fp32", workers: int | None = None,
                   ci: str = "wilson", ci_level: float = 0.95) -> pd.DataFrame:
    """The matrix, with a progress bar; skipped cells are noted on stderr; nothing scorable is an error."""
    from robench.scoring import matrix
    from robench.scoring.matrix import parse_shard

    with Bars() as bars:
        df = matrix(workspace, models, sets, device=device, data_dir=data_dir, use_cache=use_cache,
                    batch_size=batch_size, shard=parse_shard(shard), callback=bars, precision=precision,
                    workers=workers, ci=ci, ci_level=ci_level)
    for s in df.attrs.get("skipped", []):
        err.print(f"[yellow]skipped[/] {s['target']} on {s['set']}: {s['reason']}", highlight=False)
    if df.empty:
        raise RobenchError("no (target, set) pair could be scored (see the skipped cells above); "
                           "pick models and sets of the same dataset with --models / --sets")
    return df


def put_matrix(df: pd.DataFrame, fmt: str | None, out_path: os.PathLike | None, cell: str, min_n: int,
               show_n: bool, ci_style: str = "none") -> None:
    """The matrix as tables on stdout, or csv/json (tidy rows) / markdown/latex (paper layout) to --out."""
    from robench.reports import tables

    def show() -> None:
        show_matrix(df, cell, min_n, show_n, ci_style)
        targeted = df[df["target_hit_rate"].notna()] if "target_hit_rate" in df else df.iloc[:0]
        if cell == "defense_rate" and not targeted.empty:  # targeted sets: how often the target was hit, beside
            show_matrix(targeted, "target_hit_rate", min_n, show_n, ci_style)

    output(fmt, out_path, show, lambda f: tables.render(df, f, cell, min_n=min_n, show_n=show_n, ci=ci_style))


# ---------------------------------------------------------------- commands


@cli_errors
def matrix_cmd(
    ctx: typer.Context,
    models: str = MODELS,
    sets: str = SETS,
    out_path: Path = OUT,
    fmt: Format = FORMAT,
    cell: Value = VALUE,
    plot: Path = PLOT,
    dpi: int = DPI,
    min_n: int = MIN_N,
    show_n: bool = SHOW_N,
    no_cache: bool = typer.Option(False, "--no-cache", help="Recompute every prediction (and do not store them)."),
    batch_size: int = typer.Option(512, help="Inference batch size."),
    shard: str = typer.Option(None, help="Score only shard I/N of the models (e.g. 2/4), for several machines."),
    workspace: Path = WORKSPACE,
    device: str = DEVICE,
    data_dir: Path = DATA_DIR,
    precision: Precision = PRECISION,
    workers: int = WORKERS,
    ci: CiMethod = CI,
    ci_level: float = CI_LEVEL,
    ci_style: CiStyle = CI_STYLE,
    by_config: bool = typer.Option(False, "--by-config", help="Aggregate cells over training-seed replicates of "
                                                               "one configuration: mean, std, replicates, t interval."),
    targets: str = TARGETS,
) -> None:
    """Score every target model on every adversarial set: defense rate, agreement, relation.

    Defense rate: among a set's examples whose clean original the target classifies correctly (n), the
    fraction whose adversarial version it classifies as the true label. Agreement: over the same n, the
    fraction where it outputs the source's adversarial label. Target hit rate (targeted sets): over the same n,
    the fraction where it outputs the example's target, shown in a second table beside the defense rate.
    Table cells: % with [w] white-box, [g] gray-box; a cell resting on fewer than --min-n images shows its n.

    --format csv|json writes the tidy rows (one per target and set, with n and the relation); markdown|latex
    the tables as shown. `--shard I/N` scores a slice of the models on one machine; `robench matrix merge`
    joins the CSVs. Every row carries the --ci interval of its rates (ci_low, ci_high); --ci-style shows them.
    --by-config averages the cells of models that differ only in their seeds (mean, std, replicates, and the t
    interval across seeds).
    """
    if ctx.invoked_subcommand is not None:
        return
    from robench.reports import plots

    models = deprecated(models, targets, "--targets", "--models")
    check_out(out_path, plot)
    df = compute_matrix(workspace, models, sets, device, data_dir, not no_cache, batch_size, shard,
                        value(precision), workers, value(ci), ci_level)
    if by_config:
        from robench.scoring.replicates import by_config as aggregate

        df = aggregate(df, value=value(cell), level=ci_level)
    put_matrix(df, value(fmt), out_path, value(cell), min_n, show_n, value(ci_style))
    draw(plot, lambda p: plots.heatmap(df, p, value(cell), dpi=dpi, min_n=min_n, show_n=show_n,
                                       ci=value(ci_style)))


@cli_errors
def merge_cmd(
    files: list[Path] = typer.Argument(..., help="The shards' CSV or JSON files (from `robench matrix --shard "
                                                 "I/N --out`)."),
    out_path: Path = OUT,
    fmt: Format = FORMAT,
    cell: Value = VALUE,
    min_n: int = MIN_N,
    show_n: bool = SHOW_N,
    ci_style: CiStyle = CI_STYLE,
) -> None:
    """Merge the tidy CSVs of matrix shards into one, and show the paper-style tables."""
    from robench.scoring.matrix import merge

    check_out(out_path)
    df = merge([read_frame(f, REQUIRED) for f in files])
    put_matrix(df, value(fmt), out_path, value(cell), min_n, show_n, value(ci_style))
