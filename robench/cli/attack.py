"""`robench attack` and `robench sets`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer

from robench import attacks
from robench.attacks.generate import DEFAULT_N
from robench.cli.render import cli_errors, err, out, progress, table
from robench.cli.train import WORKERS
from robench.errors import RobenchError
from robench.records import SetRecord

WORKSPACE = typer.Option(None, "--workspace", "-w", envvar="ROBENCH_WORKSPACE",
                         help="Workspace folder (default: ./robench-workspace).")


def _defaults(value: object, key: str, spec: attacks.MethodSpec) -> str:
    if key in spec.pixel_params:
        return f"{round(value * 255, 2):g}/255"
    return str(value).lower() if isinstance(value, bool) else f"{value:g}"


def _methods_help() -> str:
    lines = []
    for name in attacks.list_methods():
        spec = attacks.method_spec(name)
        defaults = ", ".join(f"{k}={_defaults(v, k, spec)}" for k, v in spec.defaults.items())
        backends = ", ".join(b + (" (default)" if b == spec.default_backend else "") for b in spec.backends)
        lines.append(f"{name}: {spec.summary}. Defaults: {defaults}. Backends: {backends}.")
    return "\n\n".join(lines)


def _extra(params: list[str] | None) -> dict[str, str]:
    extra = {}
    for item in params or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise RobenchError(f"--param expects KEY=VALUE (e.g. --param binary_search_steps=3), got '{item}'")
        extra[key.strip().replace("-", "_")] = value.strip()
    return extra


def _params_text(record: SetRecord) -> str:
    spec = attacks.method_spec(record.method)
    return " ".join(f"{k}={_defaults(v, k, spec)}" for k, v in record.params.items() if k in spec.defaults)


@cli_errors
def attack(
    source: list[str] = typer.Option(..., "--source", "-s",
                                     help="Source model name (or folder); repeat it for an ensemble source "
                                          "(logits averaged)."),
    method: str = typer.Option("pgd", "--method", "-m", help=f"One of {', '.join(attacks.list_methods())}."),
    backend: str = typer.Option(None, help=f"One of {', '.join(attacks.list_backends())} (default: the method's "
                                           f"fastest; see below)."),
    eps: str = typer.Option(None, help="Linf budget in pixel units: 16/255 or 0.0627 (fgsm, pgd, mifgsm)."),
    step: str = typer.Option(None, help="Step size in pixel units: 1/255 or 0.0039 (cw: the learning rate)."),
    steps: int = typer.Option(None, help="Iterations (pgd, mifgsm, cw per binary-search step, boundary)."),
    random_start: bool = typer.Option(None, "--random-start/--no-random-start",
                                      help="pgd: start from a random point in the eps ball (default: no)."),
    confidence: float = typer.Option(None, help="cw: confidence margin kappa (default 0)."),
    sigma: str = typer.Option(None, help="noise: standard deviation in pixel units, e.g. 0.08 or 20/255."),
    decay: float = typer.Option(None, help="mifgsm: momentum decay (default 1.0)."),
    param: list[str] = typer.Option(None, "--param", "-p",
                                    help="Any other method parameter as KEY=VALUE, e.g. binary_search_steps=3."),
    n: int = typer.Option(DEFAULT_N, "--n", "-n",
                          help="Attack the first N test images the source gets right (all if fewer)."),
    seed: int = typer.Option(0, help="Seed for random starts, noise and the boundary attack."),
    name: str = typer.Option(None, help="Set name (default: sources-method-eps, e.g. densenet121-pgd-eps16)."),
    batch_size: int = typer.Option(256, help="Images attacked together."),
    workspace: Path = WORKSPACE,
    data_dir: Path = typer.Option(None, envvar="ROBENCH_DATA", help="Data folder (default: ~/.cache/robench/data)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing set of the same name."),
    device: str = typer.Option(None, help="cpu, cuda, cuda:1 ... (default: CUDA when present)."),
    workers: int = WORKERS,
) -> None:
    """Generate an adversarial set from a source model and save it in the workspace."""
    bar = progress()
    task: dict = {}

    def on_event(kind: str, p: dict) -> None:
        if kind == "start":
            bar.start()
            task["id"] = bar.add_task(p["name"], total=p["total"], info="")
        elif kind == "batch":
            rate = p["kept"] / max(p["attempted"], 1)
            bar.update(task["id"], completed=p["attempted"],
                       info=f"fooled {p['kept']} ({rate:.0%}) {p['images_per_s']:.1f} img/s")
        elif kind == "end":
            bar.update(task["id"], total=p["attempted"], completed=p["attempted"])

    method_params = {k: v for k, v in {"random_start": random_start, "confidence": confidence, "sigma": sigma,
                                       "decay": decay, **_extra(param)}.items() if v is not None}
    try:
        record = attacks.attack(
            source, method, backend=backend, eps=eps, step=step, steps=steps, n=n, seed=seed, name=name,
            workspace=workspace, data_dir=data_dir, overwrite=overwrite, device=device, batch_size=batch_size,
            workers=workers, callback=on_event, **method_params,
        )
    finally:
        if bar.live.is_started:
            bar.stop()
    row = pd.DataFrame([{
        "name": record.name, "method": record.method, "backend": record.backend,
        "params": _params_text(record), "attempted": record.attempted, "kept": record.n,
        "success_rate": record.success_rate, "wall_time_s": record.wall_time_s,
    }])
    out.print(table(row, title="adversarial set"))
    err.print(f"saved [bold]{record.name}[/] to {record.path}")


attack.__doc__ = f"""Generate an adversarial set from a source model and save it in the workspace.

The set holds those of the first --n test images the source classifies correctly that the attack \
turns into adversarial examples fooling the source (float32 in [0, 1], never quantised).

{_methods_help()}
"""


@cli_errors
def sets(workspace: Path = WORKSPACE) -> None:
    """List the adversarial sets in the workspace."""
    df = attacks.list_sets(workspace)
    if df.empty:
        err.print(f"no sets in {workspace or 'robench-workspace'}; make one with `robench attack`")
        return
    df["eps"] = [None if pd.isna(e) else f"{round(e * 255, 2):g}/255" for e in df["eps"]]
    cols = ["name", "sources", "method", "backend", "eps", "steps", "dataset", "attempted", "n", "success_rate"]
    out.print(table(df, title=f"sets in {workspace or 'robench-workspace'}", columns=cols))


def register(app: typer.Typer) -> None:
    """Add `attack` and `sets` to the robench app."""
    app.command("attack")(attack)
    app.command("sets")(sets)
