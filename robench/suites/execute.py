"""Running a plan: one step as a plain library call, the Executor interface, and the sequential executor.

:func:`run` walks the plan's graph: it skips finished steps, hands every step whose dependencies are finished to an
:class:`Executor`, and collects what it reports; a step that fails fails only the steps that depend on it. An
executor decides where a step runs: :class:`Sequential` (the default) runs one at a time in this process,
:class:`robench.suites.ray.RayExecutor` runs every ready step as a Ray task. Any process that sees the workspace
can run a step (:func:`execute_step`), since a step names all its inputs in its arguments, so another engine
(submitit, say) is one more file with one class.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from robench.context import RunContext
from robench.errors import RobenchError
from robench.events import Callback
from robench.files import atomic_path
from robench.suites.plan import Step, plan, saved
from robench.suites.schema import COMPARE_KEYS, SCORES, Suite

log = logging.getLogger(__name__)

DONE, SKIPPED, FAILED, BLOCKED, RUNNING, WAITING = "done", "skipped", "failed", "not run", "running", "waiting"


def run_step(suite: Suite, step: Step, callback: Callback | None = None, device: str | None = None) -> Any:
    """Run one step (whether or not it is done) and return its result (metadata or DataFrame)."""
    if step.kind == "matrix":
        return finish_matrix(suite, step, [matrix_part(suite, step, None, callback, device)])
    from robench.api import import_model, train
    from robench.attacks import attack

    context = _context(suite, callback, device)  # a step's own keywords (precision, data_dir, ...) override it
    if step.kind == "train":
        args = dict(step.args)
        return train(args.pop("arch"), **args, resume=step.resume, context=context)
    if step.kind == "import":
        args = dict(step.args)
        return import_model(args.pop("name"), args.pop("from"), **args, context=context)
    if step.kind == "attack":
        args = dict(step.args)
        return attack(args.pop("sources"), args.pop("method"), **args, context=context)
    from robench import scoring

    kind = step.kind.removeprefix("score:")
    args = dict(step.args)
    if step.kind == "compare":
        named = {v: k for k, v in COMPARE_KEYS.items()}
        result = scoring.compare(**{named.get(k, k): v for k, v in args.items()}, context=context)
        df = pd.DataFrame([result.to_json()])
        write_result(df, step.out)
        return df
    if "set" in args:
        args["set_name"] = args.pop("set")
    df: pd.DataFrame = getattr(scoring, SCORES[kind][0])(**args, context=context)  # an entry's data_dir wins
    write_result(df, step.out, **step.options)
    if step.figure is not None:
        _draw(df, step.figure, kind, step.options)
    return df


def matrix_part(suite: Suite, step: Step, shard: tuple[int, int] | None, callback: Callback | None = None,
                device: str | None = None) -> pd.DataFrame:
    """The matrix step's rows for shard ``(i, n)`` of its targets (None: all), written nowhere."""
    from robench.scoring import matrix

    return matrix(**{**step.args, "shard": shard}, context=_context(suite, callback, device))


def _context(suite: Suite, callback: Callback | None, device: str | None) -> RunContext:
    """What every step of ``suite`` runs in: its workspace and data folder, this process's device and callback."""
    return RunContext(workspace=suite.workspace, data_dir=suite.data_dir, device=device, callback=callback)


def finish_matrix(suite: Suite, step: Step, parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Join the matrix step's shards into the frame one process makes (same rows, same order), and write it and
    its figure."""
    frames = [p for p in parts if len(p)] or parts[:1]
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if len(frames) > 1:  # one process scores set by set, each on the targets in name order
        df = df.sort_values(["set", "target"], kind="stable").reset_index(drop=True)
    df.attrs["skipped"] = [cell for p in parts for cell in p.attrs.get("skipped", [])]
    options = {k: v for k, v in step.options.items() if k != "by_config"}
    if step.options.get("by_config"):  # replicates of one configuration averaged (robench.scoring.by_config)
        from robench.scoring import by_config

        df = by_config(df, options.get("value", "defense_rate"), step.args.get("ci_level", 0.95))
    write_result(df, step.out, matrix=True, **options)
    if step.figure is not None:
        _draw(df, step.figure, "matrix", step.options)
    return df


def write_result(df: pd.DataFrame, path: Path, *, matrix: bool = False, value: str = "defense_rate",
                 min_n: int | None = None, show_n: bool = False, dpi: int | None = None,
                 ci_style: str = "none") -> None:
    """Write a result atomically in the format of the path's suffix: csv or json (tidy rows), markdown or latex
    (a matrix in the papers' layout; a score as its table)."""
    from robench.reports import tables

    fmt = tables.format_for(path, None)
    if matrix:
        text = tables.render(df, fmt, value, min_n=tables.MIN_N if min_n is None else min_n, show_n=show_n,
                             ci=ci_style)
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
        return plots.heatmap(df, path, options.get("value", "defense_rate"), dpi=dpi,
                             ci=options.get("ci_style", "none"), **view)
    return getattr(plots, SCORES[kind][1])(df, path, dpi=dpi)


# ---------------------------------------------------------------- one step, anywhere


@dataclass
class Outcome:
    """What running one step gave: ``done`` (with its result) or ``failed`` (with a one-line error)."""

    label: str
    status: str
    error: str = ""
    where: str = ""
    seconds: float = 0.0
    result: Any = None


def log_path(suite: Suite, step: Step) -> Path:
    """WORKSPACE/logs/STEP.log: the step's log (``train-resnet18.log``, ``score-noise-noise.csv.log``)."""
    return suite.workspace / "logs" / f"{step.kind.replace(':', '-')}-{step.name}.log"


def here() -> str:
    """This process's host, and its GPUs when it was given some (CUDA_VISIBLE_DEVICES)."""
    gpus = os.environ.get("CUDA_VISIBLE_DEVICES")
    return socket.gethostname() + (f" gpu {gpus}" if gpus else "")


def execute_step(suite: Suite, step: Step, device: str | None = None, callback: Callback | None = None,
                 where: str | None = None) -> Outcome:
    """Run a step, logging to :func:`log_path` (robench's log records, progress, the error and its traceback);
    never raises for the step's own failure, which the Outcome reports in one line."""
    path = log_path(suite, step)
    where = where or here()
    started = time.perf_counter()
    with _step_log(path):
        log.info("%s: started on %s (pid %d)", step.label, where, os.getpid())
        try:
            if _made_elsewhere(suite, step):
                outcome = Outcome(step.label, SKIPPED, where=where)
            else:
                outcome = Outcome(step.label, DONE, where=where,
                                  result=run_step(suite, step, _logged(callback), device))
        except Exception as err:  # noqa: BLE001  (a step's failure is reported; the others go on)
            if _made_elsewhere(suite, step):  # e.g. "already exists": another process saved it first
                outcome = Outcome(step.label, SKIPPED, where=where)
            else:
                log.error("%s failed:\n%s", step.label, traceback.format_exc(), extra={"file_only": True})
                outcome = Outcome(step.label, FAILED, error=one_line(err), where=where)
        outcome.seconds = time.perf_counter() - started
        log.info("%s: %s in %.1fs%s", step.label, outcome.status, outcome.seconds,
                 f": {outcome.error}" if outcome.error else "")
    return outcome


def _made_elsewhere(suite: Suite, step: Step) -> bool:
    """True when a model or set step's output appeared after the plan was read: another run sharing the workspace,
    or the still-running task of an interrupted one, made it (its name fixes its settings), so this step is skipped."""
    if step.kind in ("train", "import", "attack") and saved(suite, step.kind, step.name):
        log.info("%s: made meanwhile by another process sharing the workspace; skipped", step.label)
        return True
    return False


@contextlib.contextmanager
def _step_log(path: Path) -> Iterator[None]:
    """robench's log records at INFO and above go to ``path`` for the block; those at the level the caller had
    set still reach the caller's handlers, so nothing new shows on the console."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="a")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("robench")
    before = (logger.level, logger.propagate, logger.getEffectiveLevel())
    up = _Forward(before[2]) if logger.propagate else None
    logger.addHandler(handler)
    if up is not None:
        logger.addHandler(up)
    logger.setLevel(min(logging.INFO, before[2]))
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        if up is not None:
            logger.removeHandler(up)
        logger.setLevel(before[0])
        logger.propagate = before[1]
        handler.close()


class _Forward(logging.Handler):
    """Passes records (at its level and above) on to the root logger's handlers."""

    def emit(self, record: logging.LogRecord) -> None:
        if not getattr(record, "file_only", False):  # a step's traceback stays in its log
            logging.getLogger().handle(record)


def one_line(err: BaseException) -> str:
    """An error as one line: a RobenchError's message, else the exception's type and message."""
    text = str(err) if isinstance(err, RobenchError) else f"{type(err).__name__}: {err}"
    return " ".join(text.split())


def _logged(callback: Callback | None) -> Callback:
    """The callback, also writing each task's start and end (and progress every 30 s) to the step's log."""
    last = [0.0]

    def forward(kind: str, payload: dict[str, Any]) -> None:
        now = time.monotonic()
        if kind in ("start", "end") or now - last[0] > 30:
            last[0] = now
            shown = {k: v for k, v in payload.items() if isinstance(v, str | int | float) and k != "info"}
            log.info("%s %s %s", kind, payload.get("info", ""), shown)
        if callback is not None:
            callback(kind, payload)

    return forward


# ---------------------------------------------------------------- executors


class Executor:
    """Where steps run. :func:`run` calls :meth:`start`, then :meth:`submit` for each step whose dependencies are
    finished, and :meth:`collect` until nothing is left, then :meth:`close`. ``on_progress(label, kind,
    payload)`` may be called with a running step's progress events."""

    name = "executor"

    def start(self, suite: Suite, device: str | None,
              on_progress: Callable[[str, str, dict[str, Any]], None] | None = None) -> None:
        self.suite, self.device, self.on_progress = suite, device, on_progress

    def submit(self, step: Step) -> None:
        """Start ``step`` (or queue it); its dependencies are finished."""
        raise NotImplementedError

    def collect(self) -> list[Outcome]:
        """Wait until at least one submitted step has finished; return the outcomes of those finished."""
        raise NotImplementedError

    def running(self) -> dict[str, str]:
        """{label: where} of the steps running now (as far as the executor knows)."""
        return {}

    def close(self) -> None:
        """Release what :meth:`start` took."""


class Sequential(Executor):
    """One step at a time, in this process, in the order they became ready (the default)."""

    name = "sequential"

    def start(self, suite: Suite, device: str | None,
              on_progress: Callable[[str, str, dict[str, Any]], None] | None = None) -> None:
        super().start(suite, device, on_progress)
        self.queue: list[Step] = []
        self.now: str | None = None

    def submit(self, step: Step) -> None:
        self.queue.append(step)

    def collect(self) -> list[Outcome]:
        step = self.queue.pop(0)
        self.now = step.label
        if self.on_progress:
            self.on_progress(step.label, "running", {"where": here()})
        progress = self.on_progress

        def callback(kind: str, payload: dict[str, Any]) -> None:
            if progress:
                progress(step.label, kind, payload)

        try:
            return [execute_step(self.suite, step, self.device, callback)]
        finally:
            self.now = None

    def running(self) -> dict[str, str]:
        return {self.now: here()} if self.now else {}


# ---------------------------------------------------------------- the run


@dataclass
class StepReport:
    """One step of a run: done, skipped (finished earlier), failed (with its error) or not run (``after``: the
    failed step it depends on)."""

    step: Step
    status: str = WAITING
    error: str = ""
    after: str = ""
    where: str = ""
    seconds: float | None = None
    result: Any = None


@dataclass
class RunReport:
    """Every step of a run, in plan order."""

    steps: list[StepReport] = field(default_factory=list)
    page: Path | None = None  # the HTML report a suite's [report] section asks for, written at the end

    @property
    def failed(self) -> list[StepReport]:
        """The steps that failed or did not run because of a failure."""
        return [r for r in self.steps if r.status in (FAILED, BLOCKED)]

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def results(self) -> dict[str, Any]:
        """{step label: result} of the steps that ran."""
        return {r.step.label: r.result for r in self.steps if r.status == DONE}

    def frame(self) -> pd.DataFrame:
        """step, name, status, where, seconds, and why (the error, or the failed step it waited for)."""
        rows = [{"step": r.step.kind, "name": r.step.name, "status": r.status, "where": r.where,
                 "seconds": None if r.seconds is None else round(r.seconds, 1),
                 "why": r.error or (f"{r.after} failed" if r.after else "")} for r in self.steps]
        return pd.DataFrame(rows, columns=["step", "name", "status", "where", "seconds", "why"])


def run(suite: Suite, callback: Callback | None = None, device: str | None = None,
        on_step: Callable[[StepReport], None] | None = None, executor: Executor | None = None) -> RunReport:
    """Run every unfinished step of the suite on ``executor`` (default :class:`Sequential`), each as soon as the
    steps it reads are finished; a failed step fails only what depends on it. Returns the :class:`RunReport`.

    ``callback`` receives the progress events of the steps that run in this process; ``on_step`` each step's
    report when its status changes (waiting -> running -> done / failed / not run; skipped).
    """
    steps = plan(suite)  # checks the graph before anything runs
    executor = executor or Sequential()
    report = RunReport([StepReport(s) for s in steps])
    by_label = {r.step.label: r for r in report.steps}

    def changed(r: StepReport, status: str, **info: Any) -> None:
        r.status = status
        for k, v in info.items():
            setattr(r, k, v)
        if on_step:
            on_step(r)

    def progress(label: str, kind: str, payload: dict[str, Any]) -> None:
        r = by_label[label]
        if kind == "running":
            if r.status == WAITING:  # a report that arrives after the step's outcome (Ray sends it unawaited) is late
                changed(r, RUNNING, where=payload.get("where", ""))
        elif callback is not None:
            callback(kind, payload)

    for r in report.steps:
        if r.step.done:
            log.info("skipping finished step %s", r.step.label)
            changed(r, SKIPPED)
    try:
        executor.start(suite, device, progress)
        pending = {r.step.label for r in report.steps if r.status == WAITING}
        active: set[str] = set()
        while pending or active:
            for r in [by_label[label] for label in by_label if label in pending]:
                deps = [by_label[d] for d in r.step.deps]
                broken = next((d for d in deps if d.status in (FAILED, BLOCKED)), None)
                if broken is not None:
                    pending.discard(r.step.label)
                    changed(r, BLOCKED, after=broken.after or broken.step.label)
                elif all(d.status in (DONE, SKIPPED) for d in deps):
                    pending.discard(r.step.label)
                    active.add(r.step.label)
                    executor.submit(r.step)
                    changed(r, r.status)  # submitted: still waiting for a worker
            if not active:
                if pending:  # cannot happen with a plan in topological order; never spin
                    raise RobenchError(f"steps wait for steps that never run: {', '.join(sorted(pending))}")
                continue
            for outcome in executor.collect():
                r = by_label[outcome.label]
                active.discard(outcome.label)
                if r.status == WAITING:  # finished before its 'running' report arrived: every step passes through it
                    changed(r, RUNNING, where=outcome.where)
                changed(r, outcome.status, error=outcome.error, where=outcome.where, seconds=outcome.seconds,
                        result=outcome.result)
    finally:
        executor.close()
    if suite.report is not None:
        from robench.suites.report import write_suite_report

        report.page = write_suite_report(suite)
    return report
