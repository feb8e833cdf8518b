"""`robench attack` and `robench sets`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer

from robench import attacks
from robench.attacks.convergence import Trace
from robench.attacks.generate import DEFAULT_N
from robench.cli.render import cli_errors, err, out, progress, table
from robench.cli.train import WORKERS
from robench.errors import RobenchError
from robench.records import SetRecord
from robench.runtime import PRECISIONS

WORKSPACE = typer.Option(None, "--workspace", "-w", envvar="ROBENCH_WORKSPACE",
                         help="Workspace folder (default: ./robench-workspace).")


def _defaults(value: object, key: str, spec: attacks.MethodSpec, linf: bool = True) -> str:
    if isinstance(value, str):
        return value
    if key in spec.pixel_params and linf:
        return f"{round(value * 255, 2):g}/255"
    if isinstance(value, (bool, str)):
        return str(value).lower()
    return f"{value:g}"


def _methods_help() -> str:
    lines = []
    for name in attacks.list_methods():
        spec = attacks.method_spec(name)
        defaults = ", ".join(f"{k}={_defaults(v, k, spec)}" for k, v in spec.defaults.items())
        backends = ", ".join(b + (" (default)" if b == spec.default_backend else "") for b in spec.backends)
        norms = " or ".join(spec.supported_norms)
        l2 = ", ".join(f"{k}={v:g}" for k, v in spec.l2_defaults.items())
        extra = f" Under --norm l2: {l2} (L2 norms)." if l2 else ""
        targeted = " Targeted: yes." if spec.targeted else ""
        lines.append(f"{name}: {spec.summary}. Norm: {norms}. Defaults: {defaults}.{extra} "
                     f"Backends: {backends}.{targeted}")
    return "\n\n".join(lines)


# attack()'s keywords that have their own option: --param cannot set them (it would pass them twice)
_OWN_OPTIONS = ("eps", "step", "steps", "n", "seed", "name", "backend", "workspace", "data_dir", "overwrite", "device",
                "batch_size", "precision", "compile", "workers", "callback", "target")


def _extra(params: list[str] | None) -> dict[str, str]:
    extra = {}
    for item in params or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise RobenchError(f"--param expects KEY=VALUE (e.g. --param binary_search_steps=3), got '{item}'")
        key = key.strip().replace("-", "_")
        if key in _OWN_OPTIONS:
            raise RobenchError(f"--param {item}: {key} has its own option, use --{key.replace('_', '-')} instead")
        extra[key] = value.strip()
    return extra


def _params_text(record: SetRecord) -> str:
    spec = attacks.method_spec(record.method)
    linf = record.params.get("norm") != "l2"
    shown = [f"{k}={_defaults(v, k, spec, linf)}" for k, v in record.params.items() if k in spec.defaults]
    shown += [f"norm={record.params['norm']}"] if not linf and spec.norm != "l2" else []
    shown += [f"target={record.target}"] if record.target else []
    return " ".join(shown)


@cli_errors
def attack(
    source: list[str] = typer.Option(..., "--source", "-s",
                                     help="Source model name (or folder); repeat it for an ensemble source "
                                          "(logits averaged)."),
    method: str = typer.Option("pgd", "--method", "-m", help=f"One of {', '.join(attacks.list_methods())}."),
    backend: str = typer.Option(None, help=f"One of {', '.join(attacks.list_backends())} (default: the method's "
                                           f"fastest; see below)."),
    eps: str = typer.Option(None, help="Budget: per pixel for Linf, 16/255 or 0.0627; under --norm l2 the L2 norm "
                                       "of the whole perturbation in [0, 1] image units, e.g. 0.5."),
    step: str = typer.Option(None, help="Step size, in eps's units: 1/255 or 0.0039 (cw: the learning rate)."),
    norm: str = typer.Option(None, help="linf or l2 (fgsm: l2 gives FGM; pgd, apgd, autoattack, square, "
                                        "hopskipjump; default: the method's)."),
    target: str = typer.Option(None, help="Targeted attack: random, least-likely or a class label; keeps the "
                                          "examples the source classifies as their target."),
    steps: int = typer.Option(None, help="Iterations (pgd, mifgsm, cw per binary-search step, boundary)."),
    queries: int = typer.Option(None, help="Query budget per example (square, hopskipjump, autoattack's Square)."),
    random_start: bool = typer.Option(None, "--random-start/--no-random-start",
                                      help="pgd: start from a random point in the eps ball (default: no)."),
    confidence: float = typer.Option(None, help="cw: confidence margin kappa (default 0)."),
    sigma: str = typer.Option(None, help="noise: standard deviation in pixel units, e.g. 0.08 or 20/255."),
    decay: float = typer.Option(None, help="mifgsm, difgsm, tifgsm, vmifgsm, mdti: momentum decay."),
    diversity: float = typer.Option(None, help="difgsm, mdti: probability of input diversity per step (0.5)."),
    kernel: int = typer.Option(None, help="tifgsm, mdti: odd size of the Gaussian smoothing kernel in pixels (7)."),
    samples: int = typer.Option(None, help="vmifgsm: neighbours sampled for the variance (20)."),
    loss: str = typer.Option(None, help="apgd: ce or dlr."),
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
    precision: str = typer.Option("fp32", help=f"Autocast precision of every forward pass: {', '.join(PRECISIONS)}; "
                                               f"the kept examples are decided in it."),
    compile: bool = typer.Option(False, "--compile", help="Run the source through torch.compile."),
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
                                       "decay": decay, "diversity": diversity, "kernel": kernel, "samples": samples,
                                       "loss": loss, "norm": norm, "queries": queries, **_extra(param)}.items()
                     if v is not None}
    try:
        record = attacks.attack(
            source, method, backend=backend, eps=eps, step=step, steps=steps, n=n, seed=seed, name=name,
            workspace=workspace, data_dir=data_dir, overwrite=overwrite, device=device, batch_size=batch_size,
            precision=precision, compile=compile, workers=workers, callback=on_event, target=target, **method_params,
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
    _notes(record)
    err.print(f"saved [bold]{record.name}[/] to {record.path}")


def _notes(record: SetRecord) -> None:
    """Query counts and the Boundary trace, on stderr."""
    queries = record.stats.get("queries")
    if queries and queries.get("n"):
        err.print(f"queries per kept example: median {queries['median']:g}, max {queries['max']} "
                  f"(budget {queries['budget']})")
    trace = record.stats.get("trace")
    if trace:
        medians = ", ".join(f"{s}: {m:.3g}" for s, m in zip(trace["steps"], trace["median"], strict=True))
        err.print(f"Boundary score (median ||delta||^2/pixels) by steps: {medians}")
        verdict = Trace.from_json(trace)
        if not verdict.converged:
            err.print(f"[yellow]warning:[/] the Boundary score has not converged: {verdict.reason}; raise --steps")


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
    df["eps"] = [None if pd.isna(e) else f"{e:g} (L2)" if norm == "l2" else f"{round(e * 255, 2):g}/255"
                 for e, norm in zip(df["eps"], df["norm"], strict=True)]
    df = df.rename(columns={"median_queries": "median queries (kept)"})
    cols = ["name", "sources", "method", "backend", "eps", "steps", "target", "dataset", "attempted", "n",
            "success_rate"]
    cols += ["median queries (kept)"] if df["median queries (kept)"].notna().any() else []
    out.print(table(df, title=f"sets in {workspace or 'robench-workspace'}", columns=cols))


def register(app: typer.Typer) -> None:
    """Add `attack` and `sets` to the robench app."""
    app.command("attack")(attack)
    app.command("sets")(sets)
