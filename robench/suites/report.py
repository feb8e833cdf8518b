"""A suite's HTML report: its plan and status, then the workspace's models and sets and the suite's results."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from robench.reports import html
from robench.suites.plan import plan, plan_frame
from robench.suites.schema import Suite

DEFAULT_OUT = "report.html"


def report(suite: Suite, **options: Any) -> html.Report:
    """The report of ``suite`` (options: see :func:`robench.reports.html.build_report`): its plan with each step's
    status, and the result files its matrix and scores write (those not written yet are noted)."""
    steps = plan(suite)
    results = [s.out for s in steps if s.out is not None]
    return html.build_report(suite.workspace, results=results, plan=plan_frame(steps), title=f"{suite.name}",
                             description=suite.description, **options)


def report_path(suite: Suite, out: str | os.PathLike | None = None) -> Path:
    """Where a suite's report goes: ``out`` (else the ``[report]`` out, else report.html); relative paths land in
    WORKSPACE/results/."""
    path = Path(out or (suite.report or {}).get("out") or DEFAULT_OUT)
    return path if path.is_absolute() else suite.workspace / "results" / path


def write_suite_report(suite: Suite, out: str | os.PathLike | None = None) -> Path:
    """Write the report of ``suite`` with its ``[report]`` options (see :func:`report_path` for where)."""
    options = {k: v for k, v in (suite.report or {}).items() if k != "out"}
    return html.write_page(report_path(suite, out), html.render(report(suite, **options)))
