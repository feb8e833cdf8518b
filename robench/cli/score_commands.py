"""One definition per score, two commands made from it: `robench scores X` (the table, and its figure with --plot)
and `robench plot X` (the figure alone, computed or drawn ``--from`` a file written by `scores X --out`).

A score is a function whose keyword parameters, with their Typer options as defaults, are the score's option set
(named as the library's keywords). Both commands take exactly that set, followed by their own output options, so
an option added to a score appears in both by construction (tests/test_cli_scores.py walks the click tree).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from robench.cli.matrix import draw, read_frame
from robench.cli.options import (
    CI,
    CI_LEVEL,
    DATA_DIR,
    DEVICE,
    DPI,
    FIGURE_FORMAT,
    FIGURE_OUT,
    FORMAT,
    OUT,
    PLOT,
    PRECISION,
    WORKERS,
    WORKSPACE,
    CiMethod,
    FigureFormat,
    Format,
    Precision,
    value,
)
from robench.cli.render import Bars, check_out, cli_errors, err, figure_target, out, output, table
from robench.errors import UsageError
from robench.workspace import check_selection

if TYPE_CHECKING:
    import pandas as pd

FROM = typer.Option(None, "--from", help="Draw from a CSV or JSON written by the matching --out (- for stdin) "
                                         "instead of computing.")
# each command's own options: (name, annotation, Typer option); the score's options come before the run options
TABLE_OUTPUTS = (("out_path", Path, OUT), ("fmt", Format, FORMAT))
FIGURE_OUTPUTS = (("plot", Path, PLOT), ("dpi", int, DPI))
PLOT_OUTPUTS = (("out_path", Path, FIGURE_OUT), ("fmt", FigureFormat, FIGURE_FORMAT), ("dpi", int, DPI))
PLOT_SOURCE = (("source_file", Path, FROM),)
# where and how every score runs, after its own options (a score that names one itself keeps its own)
RUN_OPTIONS = (("workspace", Path, WORKSPACE), ("device", str, DEVICE), ("data_dir", Path, DATA_DIR),
               ("precision", Precision, PRECISION), ("workers", int, WORKERS))
RATE_OPTIONS = (("ci", CiMethod, CI), ("ci_level", float, CI_LEVEL))  # the interval of a score's rates
RUN_NAMES = {name for name, _, _ in RUN_OPTIONS}


@dataclass(frozen=True)
class Score:
    """A score as both commands see it.

    ``compute``: its keyword parameters (Typer options as defaults) are the score's own options, followed by the
    rate options (``rates``: --ci, --ci-level) and the run options (--workspace, --device, ...); it takes those
    and ``callback`` as ``**run``, every choice as a plain string, and returns the tidy frame. ``title``: the
    table's title from the frame and the options; ``shown``: the table as shown (default the frame).
    ``figure``: its drawing in :mod:`robench.reports.plots` (None: a table only), given ``figure_title`` (from
    the frame and the options) where it takes a title. ``columns``: what a ``--from`` file must hold.
    ``notes``: more output after the table (fmt, out_path).
    """

    compute: Callable[..., pd.DataFrame]
    title: Callable[[pd.DataFrame, dict[str, Any]], str | None]
    shown: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    figure: str | None = None
    figure_title: Callable[[pd.DataFrame, dict[str, Any]], str | None] | None = None
    columns: tuple[str, ...] = ()
    rates: bool = False
    notes: Callable[[pd.DataFrame, str | None, Path | None], None] | None = None
    name: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", self.compute.__name__)

    def options(self) -> list[inspect.Parameter]:
        """The score's options: ``compute``'s own, then the rate and run options."""
        return options_of(self.compute, self.rates)

    def draw(self, df: pd.DataFrame, where: Any, options: dict[str, Any], fmt: str | None, dpi: int) -> Any:
        """Draw the frame's figure to ``where`` (a path or a binary stream)."""
        from robench.reports import plots

        title = {"title": self.figure_title(df, options)} if self.figure_title else {}
        return getattr(plots, self.figure)(df, where, fmt=fmt, dpi=dpi, **title)


def options_of(function: Callable[..., Any], rates: bool = False) -> list[inspect.Parameter]:
    """``function``'s keyword parameters (its own options), then the rate options (with ``rates``) and the run
    options it does not name itself."""
    params = inspect.signature(function).parameters.values()
    scope = function.__globals__  # the options' annotations are evaluated (Typer needs types); the return type not
    own = [p.replace(annotation=eval(p.annotation, scope) if isinstance(p.annotation, str) else p.annotation)
           for p in params if p.kind != p.VAR_KEYWORD]
    groups = (RATE_OPTIONS if rates else ()) + RUN_OPTIONS
    return own + [_param(*o) for o in groups if o[0] not in {p.name for p in own}]


def with_run_options(rates: bool = False) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """A command function taking ``**run`` becomes a Typer command taking its own options, then the rate options
    (with ``rates``) and the run options; it is called with every choice as a plain string."""
    def decorate(function: Callable[..., None]) -> Callable[..., None]:
        def command(**given: Any) -> None:
            function(**_split(given, ())[0])

        return _command(command, options_of(function, rates), (), doc=function.__doc__)

    return decorate


def _param(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def _command(function: Callable[..., None], options: list[inspect.Parameter], own: tuple, first: tuple = (),
             doc: str | None = None) -> Callable[..., None]:
    """``function(**given)`` as a Typer command taking ``first``, then ``options`` with the command's ``own``
    output options placed before the trailing run options (workspace, device, ...)."""
    options = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in options]
    at = len(options)
    while at and options[at - 1].name in RUN_NAMES:
        at -= 1
    params = [_param(*o) for o in first] + options[:at] + [_param(*o) for o in own] + options[at:]
    wrapped = cli_errors(function)
    wrapped.__wrapped__.__signature__ = inspect.Signature(params)
    wrapped.__annotations__ = {p.name: p.annotation for p in params}
    wrapped.__doc__ = doc
    return wrapped


def _split(given: dict[str, Any], own: tuple) -> tuple[dict[str, Any], list[Any]]:
    """The score's options (choices as plain strings) and the values of the command's own ones, in order."""
    mine = [given.pop(name) for name, _, _ in own]
    return {k: value(v) for k, v in given.items()}, mine


def _check(score: Score, options: dict[str, Any], required: list[str]) -> None:
    """Ask for a missing option, and answer a typo in a model or set name before torch loads."""
    for name in required:
        if options[name] is None:
            flag = next(o.default.param_decls[0] for o in score.options() if o.name == name)
            meta = next(o.default.metavar for o in score.options() if o.name == name)
            raise UsageError(f"pass {flag} {meta} or --from a CSV of `robench scores {score.name} --out`")
    sets = {"sets": options["set_name"]} if "set_name" in options else {}
    check_selection(options["workspace"], models=options["models"], **sets)


def _compute(score: Score, options: dict[str, Any]) -> pd.DataFrame:
    with Bars() as bars:
        return score.compute(**options, callback=bars)


def put(df: pd.DataFrame, fmt: Format | None, out_path: Path | None, title: str,
        display: pd.DataFrame | None = None) -> None:
    """A score frame: the rich table on stdout, csv/json of its tidy rows, or markdown/latex of the table shown."""
    from robench.reports import tables

    shown = df if display is None else display
    output(value(fmt), out_path, lambda: out.print(table(shown, title=title)),
           lambda f: tables.tidy_text(df, f) if f in ("csv", "json") else tables.display_text(shown, f, title))


def scores_command(score: Score) -> Callable[..., None]:
    """`robench scores X`: compute the score, put its table out, and draw its figure to --plot."""
    own = TABLE_OUTPUTS + (FIGURE_OUTPUTS if score.figure else ())

    def command(**given: Any) -> None:
        options, (out_path, fmt, *figure) = _split(given, own)
        plot, dpi = figure or (None, None)
        _check(score, options, [])
        check_out(out_path, plot)
        df = _compute(score, options)
        put(df, fmt, out_path, score.title(df, options), score.shown(df) if score.shown else None)
        if score.notes:
            score.notes(df, value(fmt), out_path)
        if plot is not None:
            draw(plot, lambda p: score.draw(df, p, options, None, dpi))

    return _command(command, score.options(), own, doc=score.compute.__doc__)


def figure_path(out_path: Path | None, fmt: FigureFormat | None, default: str) -> Path:
    """A figure's destination: --out (- for stdout), else ./<figure>.<format>; checked before any work."""
    target = out_path if out_path is not None else Path(default)
    check_out(figure=target, figure_format=value(fmt))
    return target


def draw_figure(target: Path, fmt: FigureFormat | None, render: Callable[[Any, str | None], Any]) -> None:
    """Draw to the target or, for -, to stdout; note where it went."""
    with figure_target(target, value(fmt)) as where:
        written = render(where, value(fmt))
    if isinstance(written, Path):
        err.print(f"wrote {written}", highlight=False)


def _required(option: inspect.Parameter) -> bool:
    return getattr(option.default, "default", None) is ...


def _optional(option: inspect.Parameter) -> inspect.Parameter:
    """A required option as `plot X` takes it: needed unless --from."""
    if not _required(option):
        return option
    info = copy.copy(option.default)
    info.default = None
    info.help = f"{info.help.rstrip('.')} (needed unless --from)."
    return option.replace(default=info)


def plot_command(score: Score) -> Callable[..., None]:
    """`robench plot X`: the figure of `scores X`, computed with the same options or drawn from its --out file."""
    required = [o.name for o in score.options() if _required(o)]
    options = [_optional(o) for o in score.options()]

    def command(**given: Any) -> None:
        options, (source_file, out_path, fmt, dpi) = _split(given, PLOT_SOURCE + PLOT_OUTPUTS)
        if not source_file:
            _check(score, options, required)
        target = figure_path(out_path, fmt, score.name)
        df = read_frame(source_file, list(score.columns)) if source_file else _compute(score, options)
        draw_figure(target, fmt, lambda where, f: score.draw(df, where, options, f, dpi))

    summary = (score.compute.__doc__ or "").strip().split("\n\n")[0]
    doc = (f"{summary}\n\nThe figure of `robench scores {score.name}`, with the same options: computed, or drawn "
           f"--from a file its --out wrote.")
    return _command(command, options, PLOT_OUTPUTS, PLOT_SOURCE, doc)
