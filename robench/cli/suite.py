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
    """One progress bar per running step (named after it), fed by the library's progress events."""

    started = 0.0  # when the running step started (perf_counter), for its wall time

    def on_step(self, step: suites.Step, status: str) -> None:
        if status == "skipped":
            err.print(f"[dim]skip[/] {step.label} (done)")
        elif status == "running":
            self.label, self.task, self.started = step.label, None, time.perf_counter()
        elif status == "done":
            err.print(f"[green]done[/] {step.label} in {time.perf_counter() - self.started:.1f}s")


def _show_plan(suite: suites.Suite) -> None:
    from robench import suites

    out.print(table(suites.plan_frame(suites.plan(suite)), title=f"plan: {suite.name} (workspace {suite.workspace})"))


def _execute(suite: suites.Suite, device: str | None) -> dict:
    from robench import suites
    from robench.checks import writable

    writable(suite.workspace)  # before the first step trains anything
    _show_plan(suite)
    with StepProgress() as tracker:
        return suites.run(suite, callback=tracker, device=device, on_step=tracker.on_step)


@cli_errors
def run_cmd(
    suite_file: Path = typer.Argument(..., help="The suite (TOML) to run."),
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
    for p in paths:
        err.print(f"  plot: {p}")
    err.print("Next, try:")
    for cmd in (f"robench models -w {workspace}", f"robench sets -w {workspace}",
                f"robench matrix -w {workspace} --format markdown",
                f"robench scores noise -w {workspace}",
                f"robench attack --source {suites.DEMO_SOURCE} --method mifgsm -w {workspace}"):
        err.print(f"  {cmd}", highlight=False)
