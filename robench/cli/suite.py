"""`robench run SUITE.toml` and `robench demo`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from robench.cli.render import Bars, cli_errors, err, out, show_matrix, table

if TYPE_CHECKING:
    from robench import suites


def register(app: typer.Typer) -> None:
    """Add `run` and `demo` to the robench app."""
    app.command("run")(run_cmd)
    app.command("demo")(demo_cmd)


class StepProgress(Bars):
    """One progress bar per running step (named after it), fed by the library's progress events; after each step,
    its wall time and an estimate of the time left, measured on this machine (see :func:`time_left`)."""

    started = 0.0  # when the running step started (perf_counter), for its wall time

    def __init__(self, steps: list[suites.Step] | None = None) -> None:
        super().__init__()
        self.todo = [s for s in steps or [] if not s.done]
        self.total = len(self.todo)  # steps to run, numbered 1..total as they start
        self.took: dict[str, list[float]] = {}  # step kind -> wall times of the steps of that kind run so far

    def on_step(self, step: suites.Step, status: str) -> None:
        if status == "skipped":
            err.print(f"[dim]skip[/] {step.label} (done)")
        elif status == "running":
            self.label, self.task, self.started = step.label, None, time.perf_counter()
            if any(s.label == step.label for s in self.todo):
                number = self.total - len(self.todo) + 1
                err.print(f"[bold]step {number}/{self.total}[/] {step.label}", highlight=False)
        elif status == "done":
            took = time.perf_counter() - self.started
            self.took.setdefault(step.kind, []).append(took)
            self.todo = [s for s in self.todo if s.label != step.label]
            err.print(f"[green]done[/] {step.label} in {took:.1f}s{time_left(self.todo, self.took)}", highlight=False)


def time_left(todo: list[suites.Step], took: dict[str, list[float]]) -> str:
    """'; about 95s left (4 train steps at 23.4s each ...)': the steps left, at the mean wall time of the steps of
    their kind run so far; steps of a kind not run yet are counted, not guessed."""
    if not todo:
        return ""
    known = [s for s in todo if s.kind in took]
    seconds = sum(sum(took[s.kind]) / len(took[s.kind]) for s in known)
    untimed = len(todo) - len(known)
    parts = [f"about {seconds:.0f}s left for {len(known)} step{'s' * (len(known) != 1)} like those run"] \
        if known else []
    if untimed:
        parts.append(f"{untimed} step{'s' * (untimed != 1)} of a kind not timed yet")
    return "; " + ", plus ".join(parts)


def _show_plan(suite: suites.Suite) -> None:
    from robench import suites

    out.print(table(suites.plan_frame(suites.plan(suite)), title=f"plan: {suite.name} (workspace {suite.workspace})"))


def _execute(suite: suites.Suite, device: str | None) -> dict:
    from robench import suites

    _show_plan(suite)
    with StepProgress(suites.plan(suite)) as tracker:
        return suites.run(suite, callback=tracker, device=device, on_step=tracker.on_step)


@cli_errors
def run_cmd(
    suite_file: Path = typer.Argument(..., help="The suite: a TOML file, or the name of a shipped one (mnist, "
                                                "table4, table4-cpu, tradeoff)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan and stop."),
    workspace: Path = typer.Option(None, "--workspace", "-w", envvar="ROBENCH_WORKSPACE",
                                   help="Workspace (default: the suite's [study] workspace, else robench-workspace)."),
    data_dir: Path = typer.Option(None, envvar="ROBENCH_DATA", help="Data folder."),
    device: str = typer.Option(None, help="cpu, cuda, ... (default: CUDA when present)."),
) -> None:
    """Run a whole study described in a TOML file.

    Finished steps (models, sets, scores) are skipped, so running it again resumes it.
    """
    from robench import suites

    suite = suites.load_suite(suite_file, workspace, data_dir)
    if dry_run:
        _show_plan(suite)
        return
    results = _execute(suite, device)
    for label, df in results.items():
        if label.startswith("matrix"):
            show_matrix(df)
    err.print(f"results in {suite.workspace / 'results'}")
    if "report" in results:
        err.print(f"report: {results['report']}", highlight=False, soft_wrap=True)


@cli_errors
def demo_cmd(
    workspace: Path = typer.Option(Path("robench-demo"), "--workspace", "-w", help="Where the demo writes."),
    epochs: int = typer.Option(10, help="Training epochs per model."),
    n: int = typer.Option(5000, help="Attack at most this many test images per set (digits has 360)."),
    device: str = typer.Option(None, help="cpu, cuda, ... (default: CUDA when present)."),
) -> None:
    """The whole study in one command, offline on the built-in digits data (a few minutes on a CPU)."""
    from robench import suites

    started = time.time()
    suite = suites.demo_suite(workspace, epochs=epochs, n=n)
    results = _execute(suite, device)
    matrix_step = suites.plan(suite)[-1]
    df = results.get(matrix_step.label)
    if df is None:  # finished in an earlier run: recompute from the prediction cache to show it
        df = suites.run_step(suite, matrix_step, device=device)
    show_matrix(df)
    paths = suites.demo_plots(suite, df)
    results = suite.workspace / "results"
    err.print(f"\n[bold]demo finished in {time.time() - started:.0f}s.[/] Everything is in {suite.workspace}:")
    err.print(f"  models: {suite.workspace / 'models'}    sets: {suite.workspace / 'sets'}")
    err.print(f"  matrix CSV: {results / 'demo-matrix.csv'}")
    err.print(f"  report (open it in a browser): {suites.report_path(suite)}")
    for p in paths:
        err.print(f"  plot: {p}")
    err.print("Next, try:")
    for cmd in (f"robench models -w {workspace}", f"robench sets -w {workspace}",
                f"robench matrix -w {workspace} --format markdown",
                f"robench scores noise -w {workspace}",
                f"robench attack --source {suites.DEMO_SOURCE} --method mifgsm -w {workspace}"):
        err.print(f"  {cmd}", highlight=False)
