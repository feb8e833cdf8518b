"""`robench attack` and `robench sets`."""

from __future__ import annotations

from pathlib import Path

import typer

from robench.cli import names
from robench.cli.options import (
    DATA_DIR,
    DEVICE,
    FORMAT,
    OUT,
    PRECISION,
    WORKERS,
    WORKSPACE,
    Backend,
    Format,
    Loss,
    Method,
    Norm,
    Precision,
    value,
)
from robench.cli.render import Bars, check_out, cli_errors, err, out, output, table
from robench.errors import UsageError

DEFAULT_N = 5000  # robench.attacks.generate.DEFAULT_N (checked by tests/test_cli_conventions.py)


def _pixels(value: float) -> str:
    return f"{round(value * 255, 2):g}/255"


def _defaults(value: object, key: str, pixel_params: tuple[str, ...], linf: bool = True) -> str:
    if isinstance(value, str):
        return value
    if key in pixel_params and linf:
        return _pixels(value)
    if isinstance(value, (bool, str)):
        return str(value).lower()
    return f"{value:g}"


def _methods_help() -> str:
    lines = []
    for name in names.METHODS:
        spec = names.method_spec(name)
        default_norm, *others = spec.supported_norms  # the default norm's defaults, then the other norm's
        shown = spec.defaults_for(default_norm)
        defaults = ", ".join(f"{k}={_defaults(v, k, spec.pixel_params, default_norm != 'l2')}"
                             for k, v in shown.items())
        backends = ", ".join(b + (" (default)" if b == spec.default_backend else "") for b in spec.backends)
        norms = " or ".join(spec.supported_norms)
        extra = ""
        if others and spec.l2_defaults:
            other = spec.defaults_for(others[0])
            text = ", ".join(f"{k}={_defaults(other[k], k, spec.pixel_params, others[0] != 'l2')}"
                             for k in spec.l2_defaults)
            extra = f" Under --norm {others[0]}: {text}{' (L2 norms)' if others[0] == 'l2' else ''}."
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
        key, sep, val = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--param expects KEY=VALUE (e.g. --param binary_search_steps=3), got '{item}'")
        key = key.strip().replace("-", "_")
        if key in _OWN_OPTIONS:
            raise UsageError(f"--param {item}: {key} has its own option, use --{key.replace('_', '-')} instead")
        extra[key] = val.strip()
    return extra


def _params_text(record) -> str:
    """A set's parameters as the papers write them (pixel fractions for Linf), its norm and target."""
    spec = names.method_spec(record.method)
    linf = record.params.linf
    shown = [f"{k}={_defaults(v, k, spec.pixel_params, linf)}" for k, v in record.params.items()
             if k in spec.defaults]
    shown += [f"norm={record.params.norm}"] if not linf and spec.norm != "l2" else []
    shown += [f"target={record.target}"] if record.target else []
    return " ".join(shown)


def _attack_info(kind: str, p: dict) -> str | None:
    if kind == "batch":
        rate = p["kept"] / max(p["attempted"], 1)
        return f"fooled {p['kept']} ({rate:.0%}) {p['images_per_s']:.1f} img/s"
    return None


@cli_errors
def attack(
    source: list[str] = typer.Option(..., "--source", "-s", metavar="NAME",
                                     help="Source model name (or folder); repeat it for an ensemble source "
                                          "(logits averaged)."),
    method: Method = typer.Option("pgd", "--method", "-m", help="Attack method (see below)."),
    backend: Backend = typer.Option(None, help="Attack library (default: the method's fastest; see below)."),
    eps: str = typer.Option(None, help="Budget: per pixel for Linf, 16/255 or 0.0627; under --norm l2 the L2 norm "
                                       "of the whole perturbation in [0, 1] image units, e.g. 0.5."),
    step: str = typer.Option(None, help="Step size, in eps's units: 1/255 or 0.0039 (cw: the learning rate)."),
    norm: Norm = typer.Option(None, help="fgsm: l2 gives FGM; pgd, apgd, autoattack, square, hopskipjump "
                                         "(default: the method's)."),
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
    loss: Loss = typer.Option(None, help="apgd: the loss."),
    param: list[str] = typer.Option(None, "--param", "-p", metavar="KEY=VALUE",
                                    help="Any other method parameter as KEY=VALUE, e.g. binary_search_steps=3."),
    n: int = typer.Option(DEFAULT_N, "--n", "-n",
                          help="Attack the first N test images the source gets right (all if fewer)."),
    seed: int = typer.Option(0, help="Seed for random starts, noise and the boundary attack."),
    name: str = typer.Option(None, help="Set name (default: sources-method-eps, e.g. densenet121-pgd-eps16)."),
    batch_size: int = typer.Option(256, help="Images attacked together."),
    workspace: Path = WORKSPACE,
    data_dir: Path = DATA_DIR,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing set of the same name."),
    device: str = DEVICE,
    precision: Precision = PRECISION,
    compile: bool = typer.Option(False, "--compile", help="Run the source through torch.compile."),
    workers: int = WORKERS,
) -> None:
    """Generate an adversarial set from a source model and save it in the workspace."""
    import pandas as pd

    from robench.workspace import resolve_model

    for name_or_path in source:  # a typo is answered before torch loads
        resolve_model(name_or_path, workspace)
    from robench import attacks

    method_params = {k: v for k, v in {"random_start": random_start, "confidence": confidence, "sigma": sigma,
                                       "decay": decay, "diversity": diversity, "kernel": kernel, "samples": samples,
                                       "loss": value(loss), "norm": value(norm), "queries": queries,
                                       **_extra(param)}.items()
                     if v is not None}
    with Bars(info=_attack_info) as bars:
        record = attacks.attack(
            source, value(method), backend=value(backend), eps=eps, step=step, steps=steps, n=n, seed=seed,
            name=name, workspace=workspace, data_dir=data_dir, overwrite=overwrite, device=device,
            batch_size=batch_size, precision=value(precision), compile=compile, workers=workers, callback=bars,
            target=target, **method_params,
        )
    row = pd.DataFrame([{
        "name": record.name, "method": record.method, "backend": record.backend, "params": _params_text(record),
        "attempted": record.attempted, "kept": record.n, "success_rate": record.success_rate,
        "wall_time_s": record.wall_time_s,
    }])
    out.print(table(row, title="adversarial set"))
    _notes(record)
    err.print(f"saved [bold]{record.name}[/] to {record.path}")


def _notes(record) -> None:
    """Query counts and the Boundary trace of a set's record, on stderr."""
    from robench.attacks.convergence import Trace

    queries = record.stats.queries
    if queries and queries.n:
        err.print(f"queries per kept example: median {queries.median:g}, max {queries.max} (budget {queries.budget})")
    trace = record.stats.trace
    if trace:
        medians = ", ".join(f"{s}: {m:.3g}" for s, m in zip(trace.steps, trace.median, strict=True))
        err.print(f"Boundary score (median ||delta||^2/pixels) by steps: {medians}")
        verdict = Trace.from_json(trace)
        if not verdict.converged:
            err.print(f"[yellow]warning:[/] the Boundary score has not converged: {verdict.reason}; raise --steps")


attack.__doc__ = f"""Generate an adversarial set from a source model and save it in the workspace.

The set holds those of the first --n test images the source classifies correctly that the attack \
turns into adversarial examples fooling the source (float32 in [0, 1], never quantised).

{_methods_help()}
"""

SET_COLUMNS = ["name", "sources", "method", "backend", "eps", "steps", "target", "dataset", "attempted", "n",
               "success_rate"]


@cli_errors
def sets(workspace: Path = WORKSPACE, fmt: Format = FORMAT, out_path: Path = OUT) -> None:
    """List the adversarial sets in the workspace.

    --format csv|json writes every recorded column (eps as a number); markdown|latex the table as shown.
    """
    import pandas as pd

    from robench.reports import tables
    from robench.workspace import sets_frame

    check_out(out_path)
    df = sets_frame(workspace)  # from the JSON records: no torch
    where = workspace or "robench-workspace"
    columns = SET_COLUMNS + (["median_queries"] if df["median_queries"].notna().any() else [])
    shown = df[columns].assign(eps=[None if pd.isna(e) else f"{e:g} (L2)" if norm == "l2" else _pixels(e)
                                    for e, norm in zip(df["eps"], df["norm"], strict=True)])
    shown = shown.rename(columns={"median_queries": "median queries (kept)"})
    title = f"sets in {where}"

    def show() -> None:
        if df.empty:
            err.print(f"no sets in {where}; make one with `robench attack`", soft_wrap=True)
        else:
            out.print(table(shown, title=title, right=["eps"]))

    output(value(fmt), out_path, show, lambda f: tables.tidy_text(df, f) if f in ("csv", "json")
           else tables.display_text(shown, f, title))


def register(app: typer.Typer) -> None:
    """Add `attack` and `sets` to the robench app."""
    app.command("attack")(attack)
    app.command("sets")(sets)
