"""`robench scores ...`: the papers' other scores (boundary, noise, shuffle, tradeoff, folder) and AutoAttack."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from robench.checks import numbers
from robench.cli.matrix import draw
from robench.cli.options import (
    DATA_DIR,
    DEVICE,
    DPI,
    FORMAT,
    MODELS,
    OUT,
    PLOT,
    PRECISION,
    SEED,
    SETS,
    WORKERS,
    WORKSPACE,
    BoundaryMode,
    Format,
    Norm,
    Precision,
    value,
)
from robench.cli.render import Bars, check_out, cli_errors, err, out, output, table
from robench.workspace import check_selection

if TYPE_CHECKING:
    import pandas as pd

CIFAR10C_SIGMAS = (0.04, 0.06, 0.08, 0.09, 0.10)  # robench.attacks.noise.CIFAR10C_SIGMAS (checked by a test)
N = typer.Option(None, "--n", "-n", help="Evaluate at most N test images (seeded random subset).")
ALL_IMAGES = typer.Option(False, "--all-images", help="Use every test image, not only those every model gets right.")

scores_app = typer.Typer(no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]},
                         help="The papers' other scores: boundary, noise, shuffle, tradeoff, folder; and the "
                              "white-box reference, autoattack.")


def register(app: typer.Typer) -> None:
    app.add_typer(scores_app, name="scores")


def put(df: pd.DataFrame, fmt: Format | None, out_path: Path | None, title: str,
        display: pd.DataFrame | None = None) -> None:
    """A score frame: the rich table on stdout, csv/json of its tidy rows, or markdown/latex of the table shown."""
    from robench.reports import tables

    shown = df if display is None else display
    output(value(fmt), out_path, lambda: out.print(table(shown, title=title)),
           lambda f: tables.tidy_text(df, f) if f in ("csv", "json") else tables.display_text(shown, f, title))


def curve_table(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """A tidy (model, severity, accuracy) frame as models x severities, in %."""
    wide = (df.pivot(index="model", columns=column, values="accuracy") * 100).round(2)
    wide.columns = [f"{column}={c:g}" for c in wide.columns]
    return wide.reset_index()


@scores_app.command("boundary")
@cli_errors
def boundary_cmd(
    models: str = MODELS,
    mode: BoundaryMode = typer.Option("auto", help="sets: read a boundary set made against each model; attack: "
                                                   "run the Boundary attack; auto: a set when there is one, else "
                                                   "attack."),
    sets: str = SETS,
    n: int = typer.Option(100, "--n", "-n", help="Test images to attack per model (mode attack)."),
    steps: int = typer.Option(None, help="Boundary-attack iterations (default: the attack's)."),
    tolerance: float = typer.Option(None, help="Largest relative change of the median over the last doubling of "
                                               "steps that counts as converged (default 0.05)."),
    seed: int = SEED,
    out_path: Path = OUT,
    fmt: Format = FORMAT,
    workspace: Path = WORKSPACE,
    device: str = DEVICE,
    data_dir: Path = DATA_DIR,
    precision: Precision = PRECISION,
    workers: int = WORKERS,
) -> None:
    """Boundary-attack score: median over samples of ||delta||_2^2 / (C*H*W), images in [0,1]. Higher = more robust.

    Paper (CIFAR-10, 500 samples): standard 7.3e-06, defective 3.5e-05.
    """
    check_selection(workspace, models=models)  # a typo is answered before torch loads
    from robench.scoring import boundary_scores

    check_out(out_path)
    params = {k: v for k, v in {"steps": steps, "tolerance": tolerance}.items() if v is not None}
    with Bars() as bars:
        df = boundary_scores(models, workspace, mode=value(mode), sets=sets, n=n, seed=seed, params=params,
                             device=device, data_dir=data_dir, callback=bars, precision=value(precision),
                             workers=workers)
    put(df, fmt, out_path, "Boundary-attack score (median ||delta||^2 / pixels)", df.drop(columns="reason"))
    trace = df.attrs["trace"]
    if not trace.empty and value(fmt) in (None, "table") and out_path is None:
        wide = trace.pivot(index="model", columns="steps", values="median").map(lambda v: f"{v:.3g}")
        wide.columns = [f"steps={c}" for c in wide.columns]
        out.print(table(wide.reset_index(), title="Boundary score (median) at each doubling of steps"))
    for row in df[df["converged"] == False].itertuples():  # noqa: E712 (None = no trace recorded)
        err.print(f"[yellow]warning:[/] {row.model}: the Boundary score has not converged ({row.reason}); "
                  f"raise --steps", highlight=False)


@scores_app.command("noise")
@cli_errors
def noise_cmd(
    models: str = MODELS,
    sigmas: str = typer.Option(None, help=f"Comma-separated sigmas (default: 0 and CIFAR-10-C's "
                                          f"{', '.join(map(str, CIFAR10C_SIGMAS))})."),
    n: int = N,
    all_images: bool = ALL_IMAGES,
    seed: int = SEED,
    out_path: Path = OUT,
    fmt: Format = FORMAT,
    plot: Path = PLOT,
    dpi: int = DPI,
    workspace: Path = WORKSPACE,
    device: str = DEVICE,
    data_dir: Path = DATA_DIR,
    precision: Precision = PRECISION,
    workers: int = WORKERS,
) -> None:
    """Accuracy under additive Gaussian noise (clipped to [0,1]) against sigma, per model.

    On the test images every compared model classifies correctly, unless --all-images.
    """
    check_selection(workspace, models=models)  # a typo is answered before torch loads
    from robench.reports import plots
    from robench.scoring import noise_curve

    check_out(out_path, plot)
    with Bars() as bars:
        df = noise_curve(models, workspace, sigmas=numbers(sigmas, "sigmas") or [0.0, *CIFAR10C_SIGMAS], n=n,
                         common=not all_images, seed=seed, device=device, data_dir=data_dir, callback=bars,
                         precision=value(precision), workers=workers)
    put(df, fmt, out_path, f"Gaussian noise: accuracy (%) on {df['n'].iloc[0]} images", curve_table(df, "sigma"))
    draw(plot, lambda p: plots.noise_plot(df, p, dpi=dpi))


@scores_app.command("shuffle")
@cli_errors
def shuffle_cmd(
    models: str = MODELS,
    ks: str = typer.Option("2,4,8", "--k", help="Grid sizes: each image is cut into k x k patches, then permuted."),
    n: int = N,
    all_images: bool = ALL_IMAGES,
    seed: int = SEED,
    out_path: Path = OUT,
    fmt: Format = FORMAT,
    plot: Path = PLOT,
    dpi: int = DPI,
    workspace: Path = WORKSPACE,
    device: str = DEVICE,
    data_dir: Path = DATA_DIR,
    precision: Precision = PRECISION,
    workers: int = WORKERS,
) -> None:
    """Accuracy on patch-shuffled images (k x k grid, patches randomly permuted), per model and k."""
    check_selection(workspace, models=models)  # a typo is answered before torch loads
    from robench.reports import plots
    from robench.scoring import shuffle_curve

    check_out(out_path, plot)
    with Bars() as bars:
        df = shuffle_curve(models, workspace, ks=numbers(ks, "ks"), n=n, common=not all_images, seed=seed,
                           device=device, data_dir=data_dir, callback=bars, precision=value(precision), workers=workers)
    put(df, fmt, out_path, f"Patch shuffle: accuracy (%) on {df['n'].iloc[0]} images", curve_table(df, "k"))
    draw(plot, lambda p: plots.shuffle_plot(df, p, dpi=dpi))


@scores_app.command("tradeoff")
@cli_errors
def tradeoff_cmd(
    set_name: str = typer.Option(..., "--set", help="The adversarial set to defend against."),
    models: str = MODELS,
    out_path: Path = OUT,
    fmt: Format = FORMAT,
    plot: Path = PLOT,
    dpi: int = DPI,
    workspace: Path = WORKSPACE,
    device: str = DEVICE,
    data_dir: Path = DATA_DIR,
    precision: Precision = PRECISION,
    workers: int = WORKERS,
) -> None:
    """Defense rate against one set and clean accuracy against keep, for models that differ only in keep."""
    check_selection(workspace, models=models, sets=set_name)  # a typo is answered before torch loads
    from robench.reports import plots
    from robench.scoring import tradeoff

    check_out(out_path, plot)
    with Bars() as bars:
        df = tradeoff(set_name, models, workspace, device=device, data_dir=data_dir, callback=bars,
                      precision=value(precision), workers=workers)
    title = f"keep trade-off against {set_name}"
    put(df, fmt, out_path, title)
    draw(plot, lambda p: plots.tradeoff_plot(df, p, title, dpi=dpi))


@scores_app.command("autoattack")
@cli_errors
def autoattack_cmd(
    models: str = MODELS,
    n: int = typer.Option(1000, "--n", "-n", help="Evaluate on the first N test images (RobustBench: the first N)."),
    eps: str = typer.Option(None, help="Budget: 8/255 per pixel (Linf, default); under --norm l2 an L2 norm, 0.5."),
    norm: Norm = typer.Option("linf", help="The threat model's norm."),
    attacks: str = typer.Option(None, help="A subset of apgd-ce,apgd-t,fab-t,square (default: all four, the "
                                           "standard version)."),
    steps: int = typer.Option(None, help="APGD/FAB iterations (default 100, the standard version)."),
    queries: int = typer.Option(None, help="Square's query budget (default 5000, the standard version)."),
    batch_size: int = typer.Option(256, help="Images attacked together."),
    seed: int = SEED,
    out_path: Path = OUT,
    fmt: Format = FORMAT,
    workspace: Path = WORKSPACE,
    device: str = DEVICE,
    data_dir: Path = DATA_DIR,
    precision: Precision = PRECISION,
    workers: int = WORKERS,
) -> None:
    """White-box robust accuracy under AutoAttack (standard: APGD-CE, APGD-T, FAB-T, Square), per model.

    As RobustBench reports it: on the first N test images, the fraction classified correctly after the attack
    (images misclassified when clean count as not robust).
    """
    check_selection(workspace, models=models)  # a typo is answered before torch loads
    from robench.scoring import autoattack_scores

    check_out(out_path)
    extra = {k: v for k, v in {"attacks": attacks, "steps": steps, "queries": queries}.items() if v is not None}
    with Bars() as bars:
        df = autoattack_scores(models, workspace, n=n, eps=eps, norm=value(norm), seed=seed, batch_size=batch_size,
                               device=device, data_dir=data_dir, callback=bars, precision=value(precision),
                               workers=workers, **extra)
    shown = df.assign(eps=[f"{e:g}" if nm == "l2" else f"{round(e * 255, 2):g}/255"
                           for e, nm in zip(df["eps"], df["norm"], strict=True)])
    columns = ["model", "clean_accuracy", "robust_accuracy", "n", "eps", "norm", "attacks", "arch", "keep"]
    put(df, fmt, out_path, "AutoAttack robust accuracy", shown[columns])


@scores_app.command("folder")
@cli_errors
def folder_cmd(
    data_dir: Path = typer.Option(..., "--data-dir", help="The test-only folder: DIR/<class>/* (or "
                                                          "DIR/test/<class>/*), class folders named as the models' "
                                                          "classes."),
    models: str = MODELS,
    n: int = N,
    seed: int = SEED,
    batch_size: int = typer.Option(256, help="Inference batch size."),
    out_path: Path = OUT,
    fmt: Format = FORMAT,
    plot: Path = PLOT,
    dpi: int = DPI,
    workspace: Path = WORKSPACE,
    device: str = DEVICE,
    precision: Precision = PRECISION,
    workers: int = WORKERS,
) -> None:
    """Accuracy on another test set, a test-only image folder (e.g. Stylized-ImageNet), beside clean accuracy.

    Its class folders are matched by name to each model's classes; a class missing from either side is an error.
    """
    check_selection(workspace, models=models)  # a typo is answered before torch loads
    from robench.reports import plots
    from robench.scoring import folder_scores

    check_out(out_path, plot)
    with Bars() as bars:
        df = folder_scores(models, workspace, data_dir=data_dir, n=n, seed=seed, device=device, workers=workers,
                           batch_size=batch_size, callback=bars, precision=value(precision))
    shown = df[["model", "accuracy", "clean_accuracy", "n", "arch", "keep", "placement"]].copy()
    shown[["accuracy", "clean_accuracy"]] = (shown[["accuracy", "clean_accuracy"]].astype(float) * 100).round(2)
    put(df, fmt, out_path, f"accuracy (%) on {Path(df['folder'].iloc[0]).name} ({df['n'].iloc[0]} images)", shown)
    draw(plot, lambda p: plots.folder_plot(df, p, dpi=dpi))
