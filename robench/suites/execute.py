"""Running a plan: one step as a plain library call, its result written atomically, and the sequential runner."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from robench.events import Callback
from robench.files import atomic_path
from robench.suites.plan import Step, plan
from robench.suites.schema import SCORES, Suite

log = logging.getLogger(__name__)


def run_step(suite: Suite, step: Step, callback: Callback | None = None, device: str | None = None) -> Any:
    """Run one step (whether or not it is done) and return its result (metadata or DataFrame)."""
    from robench import scoring
    from robench.api import import_model, train
    from robench.attacks import attack
    from robench.scoring import matrix

    common = {"workspace": suite.workspace, "data_dir": suite.data_dir, "device": device, "callback": callback}
    if step.kind == "train":
        args = dict(step.args)
        return train(args.pop("arch"), **args, resume=step.resume, **common)
    if step.kind == "import":
        args = dict(step.args)
        return import_model(args.pop("name"), args.pop("from"), **args, workspace=suite.workspace,
                            data_dir=suite.data_dir, device=device)
    if step.kind == "attack":
        args = dict(step.args)
        return attack(args.pop("sources"), args.pop("method"), **args, **common)
    kind = step.kind.removeprefix("score:")
    args = dict(step.args)
    if "set" in args:
        args["set_name"] = args.pop("set")
    scorer = matrix if step.kind == "matrix" else getattr(scoring, SCORES[kind][0])
    df: pd.DataFrame = scorer(**{**common, **args})  # an entry's data_dir overrides the study's
    write_result(df, step.out, matrix=step.kind == "matrix", **step.options)
    if step.figure is not None:
        _draw(df, step.figure, kind, step.options)
    return df


def write_result(df: pd.DataFrame, path: Path, *, matrix: bool = False, value: str = "defense_rate",
                 min_n: int | None = None, show_n: bool = False, dpi: int | None = None) -> None:
    """Write a result atomically in the format of the path's suffix: csv or json (tidy rows), markdown or latex
    (a matrix in the papers' layout; a score as its table)."""
    from robench.reports import tables

    fmt = tables.format_for(path, None)
    if matrix:
        text = tables.render(df, fmt, value, min_n=tables.MIN_N if min_n is None else min_n, show_n=show_n)
    else:
        text = tables.tidy_text(df, fmt) if fmt in ("csv", "json") else tables.display_text(df, fmt, path.stem)
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _draw(df: pd.DataFrame, path: Path, kind: str, options: dict[str, Any]) -> Path:
    """A result's figure: the matrix heatmap, or the score's plot."""
    from robench.reports import plots

    dpi = options.get("dpi", plots.DPI)
    if kind == "matrix":
        view = {k: options[k] for k in ("min_n", "show_n") if k in options}
        return plots.heatmap(df, path, options.get("value", "defense_rate"), dpi=dpi, **view)
    return getattr(plots, SCORES[kind][1])(df, path, dpi=dpi)


def run(suite: Suite, callback: Callback | None = None, device: str | None = None,
        on_step: Callable[[Step, str], None] | None = None) -> dict[str, Any]:
    """Run every unfinished step in order; returns {step label: result} for the steps that ran."""
    results: dict[str, Any] = {}
    for step in plan(suite):
        if step.done:
            log.info("skipping finished step %s", step.label)
            if on_step:
                on_step(step, "skipped")
            continue
        if on_step:
            on_step(step, "running")
        results[step.label] = run_step(suite, step, callback, device)
        if on_step:
            on_step(step, "done")
    if suite.report is not None:
        from robench.suites.report import write_suite_report

        results["report"] = write_suite_report(suite)
    return results


