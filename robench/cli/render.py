"""Rendering for the CLI: consoles, error handling, progress bars, tables and data output.

Data (tables, csv, json, figures asked for with ``-o -``) goes to stdout; diagnostics (progress, logs, errors,
"wrote ..." notes) go to stderr.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from robench.errors import RobenchError
from robench.files import atomic_path, is_stdout

if TYPE_CHECKING:
    import pandas as pd
    from rich.progress import Progress
    from rich.table import Table

out = Console(width=None if sys.stdout.isatty() else 160)  # data: tables go to stdout (wide when piped)
err = Console(stderr=True)  # diagnostics: progress, logs and errors go to stderr


def setup_logging(verbose: bool = False) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=err, show_path=False, show_time=False)], force=True)


def error(message: str) -> None:
    """Print a one-line error to stderr."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True, markup=True)


def cli_errors(fn: Callable) -> Callable:
    """Turn RobenchError (and Ctrl-C) into a one-line message on stderr and a non-zero exit."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RobenchError as e:
            err.print("[bold red]error:[/] ", end="")
            err.print(str(e), highlight=False, soft_wrap=True, markup=False)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None

    return wrapper


def deprecated(value: Any, old_value: Any, old: str, new: str) -> Any:
    """The value of an option given under its old, hidden name (with a note on stderr), else the new one's."""
    if old_value is None or old_value == []:
        return value
    err.print(f"[yellow]note:[/] {old} is deprecated and will be removed in the next release; use {new}",
              highlight=False, soft_wrap=True)
    return old_value


# ---------------------------------------------------------------- progress


class Bars:
    """Draws the library's progress events (see ``robench.events``) as rich bars on stderr.

    Pass an instance as ``callback``. ``label`` names the bars (default: the event's label); ``info(kind,
    payload)`` may return the status text shown beside a bar (default: the event's ``info``).
    """

    def __init__(self, label: str | None = None, info: Callable[[str, dict], str | None] | None = None) -> None:
        self.label, self.info = label, info
        self.bar: Progress | None = None
        self.task: Any = None

    def _progress(self) -> Progress:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.table import Column

        # the status text is last and the only column that shrinks, so a narrow terminal keeps the counts
        return Progress(TextColumn("[bold]{task.description}", table_column=Column(no_wrap=True)),
                        BarColumn(bar_width=24), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                        TextColumn("{task.fields[info]}", markup=False,
                                   table_column=Column(no_wrap=True, overflow="ellipsis", max_width=36)),
                        console=err, transient=False)

    def __call__(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == "start":
            if self.bar is None:
                self.bar = self._progress()
                self.bar.start()
            label = self.label or payload.get("label") or ""
            self.task = self.bar.add_task(label, total=payload.get("total"), completed=payload.get("done", 0),
                                          info="")
            return
        if self.task is None or self.bar is None:
            return
        update: dict[str, Any] = {}
        if "done" in payload:
            update["completed"] = payload["done"]
        text = self.info(kind, payload) if self.info else None
        text = text if text is not None else payload.get("info")
        if text is not None:
            update["info"] = text
        if kind == "end" and "done" in payload:
            update["total"] = payload["done"]
        self.bar.update(self.task, **update)

    def close(self, failed: bool = False) -> None:
        """Stop drawing; after a failure the bars vanish, so the error stays the one line on stderr."""
        if self.bar is not None and self.bar.live.is_started:
            if failed:
                for task in list(self.bar.task_ids):
                    self.bar.remove_task(task)
            self.bar.stop()

    def __enter__(self) -> Bars:
        return self

    def __exit__(self, kind: type | None, *exc: object) -> None:
        self.close(failed=kind is not None)


# ---------------------------------------------------------------- tables


def table(df: pd.DataFrame, title: str | None = None, columns: list[str] | None = None,
          right: list[str] | None = None) -> Table:
    """A rich table of a DataFrame's rows (pivot before calling for wide layouts); numbers right-aligned."""
    import pandas as pd
    from rich.table import Table

    from robench.reports.tables import cell_text

    t = Table(title=title, header_style="bold")
    cols = columns or list(df.columns)
    for c in cols:
        numeric = pd.api.types.is_numeric_dtype(df[c]) or c in (right or [])
        t.add_column(str(c), justify="right" if numeric else "left", overflow="fold", no_wrap=c == cols[0])
    for _, row in df.iterrows():
        t.add_row(*[cell_text(row[c]) for c in cols])
    return t


def show_matrix(df: pd.DataFrame, value: str = "defense_rate", min_n: int | None = None, show_n: bool = False,
                ci: str = "none") -> None:
    """The papers' layout: one table per attack, targets x (clean, sources), cells in % with relation markers."""
    from robench.reports import tables

    min_n = tables.MIN_N if min_n is None else min_n
    for attack, frame in tables.marked(df, value, min_n=min_n, show_n=show_n, ci=ci).items():
        frame = frame.reset_index()
        out.print(table(frame, title=f"{attack}: {value.replace('_', ' ')} (%)", right=list(frame.columns[1:])),
                  markup=False)
    err.print(tables.legend(min_n, value) + tables.ci_legend(df, ci), markup=False, highlight=False, soft_wrap=True)


# ---------------------------------------------------------------- data output


def write_stdout(data: str | bytes) -> None:
    """Data to standard output (text, or bytes such as a figure)."""
    if isinstance(data, bytes):
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        sys.stdout.write(data)
        sys.stdout.flush()


def write(path: str | os.PathLike, data: str | bytes) -> None:
    """Write data to a file (atomically, or through a FIFO), or to stdout for ``-``; notes files on stderr."""
    if is_stdout(path):
        write_stdout(data)
        return
    with atomic_path(path) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data)
    err.print(f"wrote {path}", highlight=False, soft_wrap=True)


TABLE = "table"


def check_out(data: str | os.PathLike | None = None, figure: str | os.PathLike | None = None,
              figure_format: str | None = None) -> None:
    """Refuse a bad --out / --plot before any work: a folder, a device, a figure format that contradicts its name."""
    from robench.files import write_target
    from robench.reports.plots import plot_path

    if data is not None and not is_stdout(data):
        write_target(data)
    if figure is not None and not is_stdout(figure):
        write_target(plot_path(figure, figure_format))


def output(fmt: str | None, path: str | os.PathLike | None, show: Callable[[], None],
           text: Callable[[str], str]) -> None:
    """Put a result out: ``show()`` draws the rich table on stdout; ``text(fmt)`` renders csv/json/markdown/latex.

    Without ``--out`` the format (default: the table) goes to stdout. With ``--out FILE`` the format (default:
    from the suffix, else csv) goes to the file and the table to stdout; ``--out -`` sends the format to stdout.
    """
    from robench.reports.tables import format_for

    if fmt == TABLE and path is not None and not is_stdout(path):
        raise RobenchError("--format table is for the terminal; write csv, json, markdown or latex to --out")
    if fmt == TABLE or (fmt is None and path is None):
        show()
        return
    data = text(format_for(path, fmt))
    if path is None or is_stdout(path):
        write_stdout(data)
        return
    show()
    write(path, data)


@contextmanager
def figure_target(path: str | os.PathLike, fmt: str | None) -> Iterator[Any]:
    """Where a figure goes: the path itself, or a binary buffer copied to stdout for ``-``."""
    if not is_stdout(path):
        yield path
        return
    import io

    buffer = io.BytesIO()
    yield buffer
    write_stdout(buffer.getvalue())
