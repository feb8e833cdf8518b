"""`robench run SUITE.toml` and `robench demo`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from robench.cli.render import cli_errors, err, out, show_matrix, table
from robench.errors import RobenchError

if TYPE_CHECKING:
    from rich.table import Table

    from robench import suites


def register(app: typer.Typer) -> None:
    """Add `run` and `demo` to the robench app."""
    app.command("run")(run_cmd)
    app.command("demo")(demo_cmd)


class StepTable:
    """One live table of every step (status, where it runs, elapsed, progress), fed by the run's step reports and
    the progress events of the step running in this process; drawn on stderr while the run lasts."""

    COLORS = {"done": "green", "skipped": "dim", "failed": "bold red", "not run": "red", "running": "yellow",
              "waiting": "default"}

    def __init__(self, steps: list[suites.Step]) -> None:
        from rich.live import Live

        self.rows: dict[str, suites.StepReport] = {}
        self.order = [s.label for s in steps]
        self.info: dict[str, str] = {}
        self.current: str | None = None
        self.began: dict[str, float] = {}
        self.live = Live(self, console=err, refresh_per_second=2, transient=True, redirect_stdout=False)

    def on_step(self, report: suites.StepReport) -> None:
        label = report.step.label
        self.rows[label] = report
        if report.status == "running":
            self.current, self.began[label] = label, time.monotonic()
        elif report.status in ("done", "failed"):
            self.info.pop(label, None)

    def __call__(self, kind: str, payload: dict) -> None:
        """Progress events of the step running in this process (the sequential executor)."""
        if self.current is None:
            return
        total, done = payload.get("total"), payload.get("done")
        count = f"{done:g}/{total}" if isinstance(done, int | float) and total else ""
        self.info[self.current] = " ".join(t for t in (count, str(payload.get("info") or "")) if t)

    def __rich__(self) -> Table:
        from rich.table import Table

        t = Table(header_style="bold", box=None, pad_edge=False)
        for c in ("#", "step", "name", "status", "where", "time", "progress"):
            t.add_column(c, no_wrap=c != "progress", overflow="ellipsis")
        now = time.monotonic()
        for i, label in enumerate(self.order, 1):
            r = self.rows.get(label)
            if r is None:
                continue
            status = r.status
            seconds = r.seconds if r.seconds is not None else (now - self.began[label] if status == "running"
                                                               and label in self.began else None)
            t.add_row(str(i), r.step.kind, r.step.name, f"[{self.COLORS.get(status, 'default')}]{status}[/]",
                      r.where, "" if seconds is None else f"{seconds:.0f}s",
                      r.error or (f"after {r.after} failed" if r.after else self.info.get(label, "")))
        return t

    def __enter__(self) -> StepTable:
        self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.stop()


def _show_plan(suite: suites.Suite) -> None:
    from robench import suites

    out.print(table(suites.plan_frame(suites.plan(suite)), title=f"plan: {suite.name} (workspace {suite.workspace})"))


def _execute(suite: suites.Suite, device: str | None, executor: suites.Executor | None = None) -> suites.RunReport:
    """Run the suite with the live table; then the table of every step on stderr, and exit 1 when one failed."""
    from robench import suites

    _show_plan(suite)
    with StepTable(suites.plan(suite)) as tracker:
        report = suites.run(suite, callback=tracker, device=device, on_step=tracker.on_step, executor=executor)
    frame = report.frame()
    err.print(table(frame, title=f"run: {suite.name} ({(executor or suites.Sequential()).name} executor; logs in "
                                 f"{suite.workspace / 'logs'})"))
    if not report.ok:
        failed = [r for r in report.steps if r.status == "failed"]
        blocked = len(report.failed) - len(failed)
        raise RobenchError(f"{len(failed)} step(s) failed ({failed[0].step.label}: {failed[0].error})"
                           + (f", {blocked} more not run" if blocked else "")
                           + "; fix it and run again: finished steps are skipped")
    return report


_RAY = "Ray executor"


@cli_errors
def run_cmd(
    suite_file: Path = typer.Argument(..., help="The suite (TOML) to run."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan (each step and the steps it runs after) "
                                                          "and stop."),
    workspace: Path = typer.Option(None, "--workspace", "-w", envvar="ROBENCH_WORKSPACE",
                                   help="Workspace (default: the suite's [study] workspace, else robench-workspace)."),
    data_dir: Path = typer.Option(None, envvar="ROBENCH_DATA", help="Data folder."),
    device: str = typer.Option(None, help="cpu, cuda, ... (default: CUDA when present)."),
    executor: str = typer.Option(None, help="sequential (default: one step at a time here) or ray (every ready "
                                            "step a Ray task; pip install 'robench[ray]')."),
    address: str = typer.Option(None, help="Ray cluster to join: auto, or ray://HOST:10001 (default: start Ray "
                                           "here).", rich_help_panel=_RAY),
    num_cpus: int = typer.Option(None, help="CPUs of the Ray started here (default: all).", rich_help_panel=_RAY),
    num_gpus: float = typer.Option(None, help="GPUs of the Ray started here (default: all found).",
                                   rich_help_panel=_RAY),
    cpus_per_step: float = typer.Option(None, help="CPUs each step asks for (torch threads), default 1.",
                                        rich_help_panel=_RAY),
    gpus_per_train: float = typer.Option(None, help="GPUs per training; 0.25 packs four on a GPU (default: 1 when "
                                                    "the cluster has GPUs, else 0).", rich_help_panel=_RAY),
    gpus_per_import: float = typer.Option(None, help="GPUs per import.", rich_help_panel=_RAY),
    gpus_per_attack: float = typer.Option(None, help="GPUs per attack.", rich_help_panel=_RAY),
    gpus_per_matrix: float = typer.Option(None, help="GPUs per matrix shard.", rich_help_panel=_RAY),
    gpus_per_score: float = typer.Option(None, help="GPUs per score.", rich_help_panel=_RAY),
    matrix_shards: int = typer.Option(None, help="Tasks the matrix is split into (default: as many as run at once, "
                                                 "at most 8).", rich_help_panel=_RAY),
) -> None:
    """Run a whole study described in a TOML file.

    Each step runs when the steps it reads have finished. Finished steps (models, sets, scores) are skipped, so
    running it again resumes it. A failed step stops only the steps that depend on it; the run ends with a table
    of every step and exits 1 if one failed. Each step's log is in WORKSPACE/logs/. Options of the Ray executor
    may also be given in the suite's [executor] section.
    """
    from robench import suites

    suite = suites.load_suite(suite_file, workspace, data_dir)
    if dry_run:
        _show_plan(suite)
        return
    chosen = suites.executor_for(suite, executor, address=address, num_cpus=num_cpus, num_gpus=num_gpus,
                                 cpus_per_step=cpus_per_step, gpus_per_train=gpus_per_train,
                                 gpus_per_import=gpus_per_import, gpus_per_attack=gpus_per_attack,
                                 gpus_per_matrix=gpus_per_matrix, gpus_per_score=gpus_per_score,
                                 matrix_shards=matrix_shards)
    report = _execute(suite, device, chosen)
    for label, df in report.results.items():
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
    results = _execute(suite, device).results
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
