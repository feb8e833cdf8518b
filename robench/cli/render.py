"""Rendering for the CLI: consoles, error handling, progress bars and tables."""

from __future__ import annotations

import functools
import logging
import math
import sys
from collections.abc import Callable
from typing import Any

import pandas as pd
import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from robench.errors import RobenchError

out = Console(width=None if sys.stdout.isatty() else 160)  # data: tables go to stdout (wide when piped)
err = Console(stderr=True)  # diagnostics: progress, logs and errors go to stderr


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=err, show_path=False, show_time=False)], force=True)


def cli_errors(fn: Callable) -> Callable:
    """Turn RobenchError (and Ctrl-C) into a one-line message on stderr and a non-zero exit."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RobenchError as e:
            err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None

    return wrapper


def progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=err, transient=False,
    )


def fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e-3 and value else f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return str(value)


def table(df: pd.DataFrame, title: str | None = None, columns: list[str] | None = None) -> Table:
    """A rich table of a DataFrame's rows (pivot before calling for wide layouts)."""
    t = Table(title=title, header_style="bold")
    cols = columns or list(df.columns)
    for c in cols:
        numeric = pd.api.types.is_numeric_dtype(df[c])
        t.add_column(str(c), justify="right" if numeric else "left", overflow="fold", no_wrap=c == cols[0])
    for _, row in df.iterrows():
        t.add_row(*[fmt(row[c]) for c in cols])
    return t


def show_matrix(df: pd.DataFrame, value: str = "defense_rate") -> None:
    """The papers' layout: one table per attack, targets x (clean, sources), cells in % with relation markers."""
    from robench.reports import tables

    for attack, frame in tables.marked(df, value).items():
        t = table(frame.map(escape).reset_index(), title=f"{attack}: {value.replace('_', ' ')} (%)")
        for column in t.columns[1:]:
            column.justify = "right"
        out.print(t)
    err.print(tables.LEGEND, markup=False, highlight=False)
