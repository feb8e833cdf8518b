"""`robench matrix`, `robench scores ...` and `robench plot ...`: score models and draw the figures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import typer

from robench.attacks.noise import CIFAR10C_SIGMAS
from robench.cli.render import cli_errors, err, out, progress, show_matrix, table
from robench.cli.train import WORKERS, WORKSPACE
from robench.errors import RobenchError
from robench.files import atomic_path
from robench.reports import plots, tables
from robench.runtime import PRECISIONS
from robench.scoring import (
    autoattack_scores,
    boundary_scores,
    folder_scores,
    matrix,
    noise_curve,
    set_examples,
    shuffle_curve,
    tradeoff,
)
from robench.scoring.matrix import COLUMNS, parse_shard
from robench.scoring.matrix import merge as merge_frames

DEVICE = typer.Option(None, help="cpu, cuda, cuda:1 ... (default: CUDA when present).")
DATA_DIR = typer.Option(None, envvar="ROBENCH_DATA", help="Data folder (default: ~/.cache/robench/data).")
PRECISION = typer.Option("fp32", help=f"Autocast precision of the predictions: {', '.join(PRECISIONS)}.")
MODELS = typer.Option("*", "--models", "-m", help="Models to score: glob patterns, comma-separated.")
OUT_CSV = typer.Option(None, "--out", "-o", help="Write the tidy table as CSV to this file.")
PLOT = typer.Option(None, "--plot", help="Also draw the figure to this file (.png, or .svg).")
N = typer.Option(None, "--n", help="Evaluate at most N test images (seeded random subset).")
SEED = typer.Option(0, help="Seed of the sample choice, noise and permutations.")
VALUES = ("defense_rate", "agreement", "target_hit_rate")

scores_app = typer.Typer(no_args_is_help=True, help="The papers' other scores: boundary, noise, shuffle, tradeoff, "
                                                    "folder; and the white-box reference, autoattack.")
plot_app = typer.Typer(no_args_is_help=True,
                       help="Figures (PNG, or SVG): heatmap, noise, shuffle, tradeoff, folder, examples.")


def register(app: typer.Typer) -> None:
    """Add `matrix`, the `scores` group and the `plot` group to the robench app."""
    matrix_app = typer.Typer()  # the help is matrix_cmd's docstring
    matrix_app.callback(invoke_without_command=True)(matrix_cmd)
    matrix_app.command("merge")(merge_cmd)
    app.add_typer(matrix_app, name="matrix")
    app.add_typer(scores_app, name="scores")
    app.add_typer(plot_app, name="plot")


# ---------------------------------------------------------------- helpers


def _floats(text: str | None, default: tuple[float, ...]) -> list[float]:
    if not text:
        return list(default)
    try:
        return [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise RobenchError(f"expected comma-separated numbers, got '{text}'") from None


def _write_text(path: Path, text: str) -> None:
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(text)
    err.print(f"wrote {path}")


def _write_csv(df: pd.DataFrame, path: Path | None) -> None:
    if path is not None:
        _write_text(path, df.to_csv(index=False))


def _plot(draw: Callable[[pd.DataFrame, Path], Path], df: pd.DataFrame, path: Path | None, fmt: str | None) -> None:
    if path is not None:
        err.print(f"wrote {draw(df, plots.plot_path(path, fmt))}")


def _read_csv(path: Path, needed: list[str]) -> pd.DataFrame:
    try:
        df = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise RobenchError(f"cannot read {path} ({type(e).__name__}); pass a CSV written with --out") from None
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise RobenchError(f"{path} lacks column(s) {', '.join(missing)}; pass a CSV written by the matching --out")
    return df


def _show_wide(df: pd.DataFrame, index: str, columns: str, title: str, value: str = "accuracy") -> None:
    """A tidy (model, severity, accuracy) frame as a rich table: models x severities, in %."""
    wide = (df.pivot(index=index, columns=columns, values=value) * 100).round(2)
    wide.columns = [f"{columns}={c:g}" for c in wide.columns]
    out.print(table(wide.reset_index(), title=title))


def _run_with_progress(label: str, fn: Callable, **kwargs):
    """Run a scoring function with a progress bar on stderr fed by its callback."""
    bar = progress()
    state: dict = {}

    def on_event(kind: str, p: dict) -> None:
        if kind == "start":
            bar.start()
            state["id"] = bar.add_task(label, total=p.get("total") or None, info="")
        elif kind in ("cell", "skip") and "id" in state:
            info = f"{p['target']} on {p['set']}" + (" (cached)" if p.get("cached") else "")
            bar.update(state["id"], completed=p["done"], info=info if kind == "cell" else "skipped")

    try:
        return fn(**kwargs, callback=on_event)
    finally:
        if bar.live.is_started:
            bar.stop()


# ---------------------------------------------------------------- matrix


def _compute_matrix(workspace, targets, sets, device, data_dir, use_cache, batch_size, shard=None,
                    precision: str = "fp32", workers=None) -> pd.DataFrame:
    df = _run_with_progress("matrix", matrix, workspace=workspace, targets=targets, sets=sets, device=device,
                            data_dir=data_dir, use_cache=use_cache, batch_size=batch_size, shard=shard,
                            precision=precision, workers=workers)
    for s in df.attrs.get("skipped", []):
        err.print(f"[yellow]skipped[/] {s['target']} on {s['set']}: {s['reason']}", highlight=False)
    if df.empty:
        raise RobenchError("no (target, set) pair could be scored (see the skipped cells above); "
                           "pick models and sets of the same dataset with --targets / --sets")
    return df


@cli_errors
def matrix_cmd(
    ctx: typer.Context,
    targets: str = typer.Option("*", "--targets", "-t", help="Target models: glob patterns, comma-separated."),
    sets: str = typer.Option("*", "--sets", "-s", help="Adversarial sets: glob patterns, comma-separated."),
    out_path: Path = typer.Option(None, "--out", "-o",
                                  help="Write the tidy long CSV here (with --format: that wide layout instead)."),
    fmt: str = typer.Option(None, "--format", "-f",
                            help=f"Wide paper layout as {', '.join(tables.FORMATS)} (to stdout, or --out)."),
    value: str = typer.Option("defense_rate", help="Cell value of the wide layout: defense_rate, agreement or "
                                                   "target_hit_rate (targeted sets)."),
    plot: Path = PLOT,
    no_cache: bool = typer.Option(False, "--no-cache", help="Recompute every prediction (and do not store them)."),
    batch_size: int = typer.Option(512, help="Inference batch size."),
    shard: str = typer.Option(None, help="Score only shard I/N of the targets (e.g. 2/4), for several machines."),
    workspace: Path = WORKSPACE,
    device: str = DEVICE,
    data_dir: Path = DATA_DIR,
    precision: str = PRECISION,
    workers: int = WORKERS,
) -> None:
    """Score every target model on every adversarial set: defense rate, agreement, relation.

    Defense rate: among a set's examples whose clean original the target classifies correctly (n), the
    fraction whose adversarial version it classifies as the true label. Agreement: over the same n, the
    fraction where it outputs the source's adversarial label. Target hit rate (targeted sets): over the same n,
    the fraction where it outputs the example's target, shown in a second table beside the defense rate.
    Cells: % with [w] white-box, [g] gray-box.
    `--shard I/N` scores a slice of the targets on one machine; `robench matrix merge` joins the CSVs.
    """
    if ctx.invoked_subcommand is not None:
        return
    if value not in VALUES:
        raise RobenchError(f"unknown --value '{value}': choose {', '.join(VALUES)}")
    if fmt is not None and fmt not in tables.FORMATS:
        raise RobenchError(f"unknown --format '{fmt}': choose one of {', '.join(tables.FORMATS)}")
    df = _compute_matrix(workspace, targets, sets, device, data_dir, not no_cache, batch_size, parse_shard(shard),
                         precision, workers)
    if fmt is not None and out_path is None:
        typer.echo(tables.render(df, fmt, value), nl=False)
    else:
        show_matrix(df, value)
        targeted = df[df["target_hit_rate"].notna()]
        if value == "defense_rate" and not targeted.empty:
            show_matrix(targeted, "target_hit_rate")
    if out_path is not None:
        _write_text(out_path, tables.render(df, fmt, value) if fmt else df.to_csv(index=False))
    _plot(lambda d, p: plots.heatmap(d, p, value), df, plot, None)


@cli_errors
def merge_cmd(
    files: list[Path] = typer.Argument(..., help="The shards' CSV files (from `robench matrix --shard I/N --out`)."),
    out_path: Path = typer.Option(None, "--out", "-o", help="Write the merged tidy CSV here."),
    value: str = typer.Option("defense_rate", help="Cell value of the tables: defense_rate or agreement."),
) -> None:
    """Merge the tidy CSVs of matrix shards into one, and show the paper-style tables."""
    frames = [_read_csv(f, COLUMNS[:9]) for f in files]
    df = merge_frames(frames)
    show_matrix(df, value)
    _write_csv(df, out_path)


# ---------------------------------------------------------------- scores


@scores_app.command("boundary")
@cli_errors
def boundary_cmd(
    models: str = MODELS,
    mode: str = typer.Option("auto", help="sets: read a boundary set made against each model; attack: run the "
                                          "Boundary attack; auto: a set when there is one, else attack."),
    sets: str = typer.Option("*", "--sets", "-s", help="Sets to look for boundary sets in (globs)."),
    n: int = typer.Option(100, "--n", help="Test images to attack per model (mode attack)."),
    steps: int = typer.Option(None, help="Boundary-attack iterations (default: the attack's)."),
    tolerance: float = typer.Option(None, help="Largest relative change of the median over the last doubling of "
                                               "steps that counts as converged (default 0.05)."),
    seed: int = SEED,
    out_path: Path = OUT_CSV,
    workspace: Path = WORKSPACE,
    device: str = DEVICE,
    data_dir: Path = DATA_DIR,
    precision: str = PRECISION,
    workers: int = WORKERS,
) -> None:
    """Boundary-attack score: median over samples of ||delta||_2^2 / (C*H*W), images in [0,1]. Higher = more robust.

    Paper (CIFAR-10, 500 samples): standard 7.3e-06, defective 3.5e-05.
    """
    params = {k: v for k, v in {"steps": steps, "tolerance": tolerance}.items() if v is not None}
    df = boundary_scores(models, workspace, mode=mode, sets=sets, n=n, seed=seed, params=params, device=device,
                         data_dir=data_dir, precision=precision, workers=workers)
    out.print(table(df.drop(columns="reason"), title="Boundary-attack score (median ||delta||^2 / pixels)"))
    trace = df.attrs["trace"]
    if not trace.empty:
        wide = trace.pivot(index="model", columns="steps", values="median").map(lambda v: f"{v:.3g}")
        wide.columns = [f"steps={c}" for c in wide.columns]
        out.print(table(wide.reset_index(), title="Boundary score (median) at each doubling of steps"))
    for row in df[df["converged"] == False].itertuples():  # noqa: E712 (None = no trace recorded)
        err.print(f"[yellow]warning:[/] {row.model}: the Boundary score has not converged ({row.reason}); "
                  f"raise --steps")
    _write_csv(df, out_path)


@scores_app.command("noise")
@cli_errors
def noise_cmd(
    models: str = MODELS,
    sigmas: str = typer.Option(None, help=f"Comma-separated sigmas (default: 0 and CIFAR-10-C's "
                                          f"{', '.join(map(str, CIFAR10C_SIGMAS))})."),
    n: int = N,
    all_images: bool = typer.Option(False, "--all-images",
                                    help="Use every test image, not only those every model gets right."),
    seed: int = SEED,
    out_path: Path = OUT_CSV,
    plot: Path = PLOT,
    workspace: Path = WORKSPACE,
    device: str = DEVICE,
    data_dir: Path = DATA_DIR,
    precision: str = PRECISION,
    workers: int = WORKERS,
) -> None:
    """Accuracy under additive Gaussian noise (clipped to [0,1]) against sigma, per model.

    On the test images every compared model classifies correctly, unless --all-images.
    """
    df = noise_curve(models, workspace, sigmas=_floats(sigmas, (0.0, *CIFAR10C_SIGMAS)), n=n,
                     common=not all_images, seed=seed, device=device, data_dir=data_dir,
                     precision=precision, workers=workers)
    _show_wide(df, "model", "sigma", f"Gaussian noise: accuracy (%) on {df['n'].iloc[0]} images")
    _write_csv(df, out_path)
    _plot(plots.noise_plot, df, plot, None)


@scores_app.command("shuffle")
@cli_errors
def shuffle_cmd(
    models: str = MODELS,
    k: str = typer.Option("2,4,8", "--k", help="Grid sizes: each image is cut into k x k patches, then permuted."),
    n: int = N,
    all_images: bool = typer.Option(False, "--all-images",
                                    help="Use every test image, not only those every model gets right."),
    seed: int = SEED,
    out_path: Path = OUT_CSV,
    plot: Path = PLOT,
    workspace: Path = WORKSPACE,
    device: str = DEVICE,
    data_dir: Path = DATA_DIR,
    precision: str = PRECISION,
    workers: int = WORKERS,
) -> None:
    """Accuracy on patch-shuffled images (k x k grid, patches randomly permuted), per model and k."""
    ks = [int(v) for v in _floats(k, ())]
    df = shuffle_curve(models, workspace, ks=ks, n=n, common=not all_images, seed=seed, device=device,
                       data_dir=data_dir, precision=precision, workers=workers)
    _show_wide(df, "model", "k", f"Patch shuffle: accuracy (%) on {df['n'].iloc[0]} images")
    _write_csv(df, out_path)
    _plot(plots.shuffle_plot, df, plot, None)


@scores_app.command("tradeoff")
@cli_errors
def tradeoff_cmd(
    set_name: str = typer.Option(..., "--set", help="The adversarial set to defend against."),
    models: str = MODELS,
    out_path: Path = OUT_CSV,
    plot: Path = PLOT,
    workspace: Path = WORKSPACE,
    device: str = DEVICE,
    data_dir: Path = DATA_DIR,
    precision: str = PRECISION,
    workers: int = WORKERS,
) -> None:
    """Defense rate against one set and clean accuracy against keep, for models that differ only in keep."""
    df = tradeoff(set_name, models, workspace, device=device, data_dir=data_dir, precision=precision,
                  workers=workers)
    out.print(table(df, title=f"keep trade-off against {set_name}"))
    _write_csv(df, out_path)
    _plot(lambda d, p: plots.tradeoff_plot(d, p, f"keep trade-off against {set_name}"), df, plot, None)


@scores_app.command("autoattack")
@cli_errors
def autoattack_cmd(
    models: str = MODELS,
    n: int = typer.Option(1000, "--n", help="Evaluate on the first N test images (RobustBench: the first N)."),
    eps: str = typer.Option(None, help="Budget: 8/255 per pixel (Linf, default); under --norm l2 an L2 norm, 0.5."),
    norm: str = typer.Option("linf", help="linf or l2."),
    attacks: str = typer.Option(None, help="A subset of apgd-ce,apgd-t,fab-t,square (default: all four, the "
                                           "standard version)."),
    steps: int = typer.Option(None, help="APGD/FAB iterations (default 100, the standard version)."),
    queries: int = typer.Option(None, help="Square's query budget (default 5000, the standard version)."),
    batch_size: int = typer.Option(256, help="Images attacked together."),
    seed: int = SEED,
    out_path: Path = OUT_CSV,
    workspace: Path = WORKSPACE,
    device: str = DEVICE,
    data_dir: Path = DATA_DIR,
    precision: str = PRECISION,
    workers: int = WORKERS,
) -> None:
    """White-box robust accuracy under AutoAttack (standard: APGD-CE, APGD-T, FAB-T, Square), per model.

    As RobustBench reports it: on the first N test images, the fraction classified correctly after the attack
    (images misclassified when clean count as not robust).
    """
    extra = {k: v for k, v in {"attacks": attacks, "steps": steps, "queries": queries}.items() if v is not None}
    df = autoattack_scores(models, workspace, n=n, eps=eps, norm=norm, seed=seed, batch_size=batch_size,
                           device=device, data_dir=data_dir, precision=precision, workers=workers, **extra)
    shown = df.assign(eps=[f"{e:g}" if nm == "l2" else f"{round(e * 255, 2):g}/255"
                           for e, nm in zip(df["eps"], df["norm"], strict=True)])
    out.print(table(shown, title="AutoAttack robust accuracy", columns=["model", "clean_accuracy", "robust_accuracy",
                                                                       "n", "eps", "norm", "attacks", "arch", "keep"]))
    _write_csv(df, out_path)


FOLDER_DIR = typer.Option(..., "--data-dir", help="The test-only folder: DIR/<class>/* (or DIR/test/<class>/*), "
                                                  "class folders named as the models' classes.")


@scores_app.command("folder")
@cli_errors
def folder_cmd(
    data_dir: Path = FOLDER_DIR,
    models: str = MODELS,
    n: int = N,
    seed: int = SEED,
    batch_size: int = typer.Option(256, help="Inference batch size."),
    out_path: Path = OUT_CSV,
    plot: Path = PLOT,
    workspace: Path = WORKSPACE,
    device: str = DEVICE,
    precision: str = PRECISION,
    workers: int = WORKERS,
) -> None:
    """Accuracy on another test set, a test-only image folder (e.g. Stylized-ImageNet), beside clean accuracy.

    Its class folders are matched by name to each model's classes; a class missing from either side is an error.
    """
    df = folder_scores(models, workspace, data_dir=data_dir, n=n, seed=seed, device=device, workers=workers,
                       batch_size=batch_size, precision=precision)
    shown = df[["model", "accuracy", "clean_accuracy", "n", "arch", "keep", "placement"]].copy()
    shown[["accuracy", "clean_accuracy"]] = (shown[["accuracy", "clean_accuracy"]].astype(float) * 100).round(2)
    out.print(table(shown, title=f"accuracy (%) on {Path(df['folder'].iloc[0]).name} ({df['n'].iloc[0]} images)"))
    _write_csv(df, out_path)
    _plot(plots.folder_plot, df, plot, None)


# ---------------------------------------------------------------- plots

PLOT_OUT = typer.Option(None, "--out", "-o", help="Figure file (default: ./<figure>.<format>).")
PLOT_FORMAT = typer.Option(None, "--format", "-f", help="png (default) or svg; else the --out suffix decides.")
FROM = typer.Option(None, "--from", help="Draw from a CSV written by the matching --out instead of computing.")


def _target(out_path: Path | None, fmt: str | None, default: str) -> Path:
    return plots.plot_path(out_path or Path(default), fmt)


@plot_app.command("heatmap")
@cli_errors
def plot_heatmap(
    source_csv: Path = FROM,
    targets: str = typer.Option("*", "--targets", "-t", help="Target models (globs)."),
    sets: str = typer.Option("*", "--sets", "-s", help="Adversarial sets (globs)."),
    value: str = typer.Option("defense_rate", help="defense_rate or agreement."),
    out_path: Path = PLOT_OUT,
    fmt: str = PLOT_FORMAT,
    workspace: Path = WORKSPACE,
    device: str = DEVICE,
    data_dir: Path = DATA_DIR,
) -> None:
    """The matrix as a heatmap per attack configuration (targets x sources, % defended)."""
    path = _target(out_path, fmt, "heatmap")
    if source_csv:
        df = _read_csv(source_csv, ["target", "source", "set", "attack", "relation", value, "target_clean_accuracy"])
    else:
        df = _compute_matrix(workspace, targets, sets, device, data_dir, True, 512)
    err.print(f"wrote {plots.heatmap(df, path, value)}")


@plot_app.command("noise")
@cli_errors
def plot_noise(
    source_csv: Path = FROM,
    models: str = MODELS,
    n: int = N,
    seed: int = SEED,
    out_path: Path = PLOT_OUT,
    fmt: str = PLOT_FORMAT,
    workspace: Path = WORKSPACE,
    device: str = DEVICE,
    data_dir: Path = DATA_DIR,
) -> None:
    """Accuracy against Gaussian-noise sigma, one line per model."""
    path = _target(out_path, fmt, "noise")
    df = _read_csv(source_csv, ["model", "sigma", "accuracy"]) if source_csv else noise_curve(
        models, workspace, n=n, seed=seed, device=device, data_dir=data_dir)
    err.print(f"wrote {plots.noise_plot(df, path)}")


@plot_app.command("shuffle")
@cli_errors
def plot_shuffle(
    source_csv: Path = FROM,
    models: str = MODELS,
    n: int = N,
    seed: int = SEED,
    out_path: Path = PLOT_OUT,
    fmt: str = PLOT_FORMAT,
    workspace: Path = WORKSPACE,
    device: str = DEVICE,
    data_dir: Path = DATA_DIR,
) -> None:
    """Accuracy against patch-grid size k, one line per model."""
    path = _target(out_path, fmt, "shuffle")
    df = _read_csv(source_csv, ["model", "k", "accuracy"]) if source_csv else shuffle_curve(
        models, workspace, n=n, seed=seed, device=device, data_dir=data_dir)
    err.print(f"wrote {plots.shuffle_plot(df, path)}")


@plot_app.command("tradeoff")
@cli_errors
def plot_tradeoff(
    set_name: str = typer.Option(None, "--set", help="The adversarial set (needed unless --from)."),
    source_csv: Path = FROM,
    models: str = MODELS,
    out_path: Path = PLOT_OUT,
    fmt: str = PLOT_FORMAT,
    workspace: Path = WORKSPACE,
    device: str = DEVICE,
    data_dir: Path = DATA_DIR,
) -> None:
    """Defense rate and clean accuracy against keep probability."""
    path = _target(out_path, fmt, "tradeoff")
    if source_csv:
        df = _read_csv(source_csv, ["keep", "defense_rate", "clean_accuracy"])
    elif set_name:
        df = tradeoff(set_name, models, workspace, device=device, data_dir=data_dir)
    else:
        raise RobenchError("pass --set NAME (the set to defend against) or --from a CSV of `robench scores tradeoff`")
    title = f"keep trade-off against {set_name}" if set_name else None
    err.print(f"wrote {plots.tradeoff_plot(df, path, title)}")


@plot_app.command("folder")
@cli_errors
def plot_folder(
    data_dir: Path = typer.Option(None, "--data-dir", help="The test-only folder (needed unless --from)."),
    source_csv: Path = FROM,
    models: str = MODELS,
    n: int = N,
    seed: int = SEED,
    out_path: Path = PLOT_OUT,
    fmt: str = PLOT_FORMAT,
    workspace: Path = WORKSPACE,
    device: str = DEVICE,
    workers: int = WORKERS,
) -> None:
    """Accuracy on a test-only folder beside clean accuracy, per model."""
    path = _target(out_path, fmt, "folder")
    if source_csv:
        df = _read_csv(source_csv, ["model", "accuracy", "clean_accuracy"])
    elif data_dir:
        df = folder_scores(models, workspace, data_dir=data_dir, n=n, seed=seed, device=device, workers=workers)
    else:
        raise RobenchError("pass --data-dir FOLDER (the test-only folder) or --from a CSV of `robench scores folder`")
    err.print(f"wrote {plots.folder_plot(df, path)}")


@plot_app.command("examples")
@cli_errors
def plot_examples(
    set_name: str = typer.Argument(..., help="The adversarial set to show."),
    model: str = typer.Option(None, "--model", help="Show this model's predictions (default: the source's)."),
    n: int = typer.Option(8, "--n", help="How many examples."),
    seed: int = SEED,
    out_path: Path = PLOT_OUT,
    fmt: str = PLOT_FORMAT,
    workspace: Path = WORKSPACE,
    device: str = DEVICE,
) -> None:
    """Clean vs adversarial examples with true and predicted labels, and the perturbation (rescaled)."""
    path = _target(out_path, fmt, "examples")
    written = set_examples(set_name, path, workspace=workspace, model=model, n=n, seed=seed, device=device)
    err.print(f"wrote {written}")

