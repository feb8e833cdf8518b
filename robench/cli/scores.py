"""`robench scores ...`: the papers' other scores (boundary, noise, shuffle, tradeoff, folder) and AutoAttack."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from robench.checks import numbers
from robench.cli.options import MODELS, SEED, SETS, BoundaryMode, Norm
from robench.cli.render import err, out, table
from robench.cli.score_commands import Score, scores_command

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


def curve_table(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """A tidy (model, severity, accuracy) frame as models x severities, in %."""
    wide = (df.pivot(index="model", columns=column, values="accuracy") * 100).round(2)
    wide.columns = [f"{column}={c:g}" for c in wide.columns]
    return wide.reset_index()


def _boundary_notes(df: pd.DataFrame, fmt: str | None, out_path: Path | None) -> None:
    """The score at each doubling of steps (on the terminal), and a warning per model that has not converged."""
    trace = df.attrs["trace"]
    if not trace.empty and fmt in (None, "table") and out_path is None:
        wide = trace.pivot(index="model", columns="steps", values="median").map(lambda v: f"{v:.3g}")
        wide.columns = [f"steps={c}" for c in wide.columns]
        out.print(table(wide.reset_index(), title="Boundary score (median) at each doubling of steps"))
    for row in df[df["converged"] == False].itertuples():  # noqa: E712 (None = no trace recorded)
        err.print(f"[yellow]warning:[/] {row.model}: the Boundary score has not converged ({row.reason}); "
                  f"raise --steps", highlight=False)


def boundary(
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
    **run: Any,
) -> pd.DataFrame:
    """Boundary-attack score: median over samples of ||delta||_2^2 / (C*H*W), images in [0,1]. Higher = more robust.

    Paper (CIFAR-10, 500 samples): standard 7.3e-06, defective 3.5e-05.
    """
    from robench.scoring import boundary_scores

    params = {k: v for k, v in {"steps": steps, "tolerance": tolerance}.items() if v is not None}
    return boundary_scores(models, mode=mode, sets=sets, n=n, seed=seed, params=params, **run)


def noise(
    models: str = MODELS,
    sigmas: str = typer.Option(None, help=f"Comma-separated sigmas (default: 0 and CIFAR-10-C's "
                                          f"{', '.join(map(str, CIFAR10C_SIGMAS))})."),
    n: int = N,
    all_images: bool = ALL_IMAGES,
    seed: int = SEED,
    **run: Any,
) -> pd.DataFrame:
    """Accuracy under additive Gaussian noise (clipped to [0,1]) against sigma, per model.

    On the test images every compared model classifies correctly, unless --all-images.
    """
    from robench.scoring import noise_curve

    sigmas = numbers(sigmas, "sigmas") or [0.0, *CIFAR10C_SIGMAS]
    return noise_curve(models, sigmas=sigmas, n=n, common=not all_images, seed=seed, **run)


def shuffle(
    models: str = MODELS,
    ks: str = typer.Option("2,4,8", "--k", help="Grid sizes: each image is cut into k x k patches, then permuted."),
    n: int = N,
    all_images: bool = ALL_IMAGES,
    seed: int = SEED,
    **run: Any,
) -> pd.DataFrame:
    """Accuracy on patch-shuffled images (k x k grid, patches randomly permuted), per model and k."""
    from robench.scoring import shuffle_curve

    return shuffle_curve(models, ks=numbers(ks, "ks"), n=n, common=not all_images, seed=seed, **run)


def tradeoff(
    set_name: str = typer.Option(..., "--set", metavar="NAME", help="The adversarial set to defend against."),
    models: str = MODELS,
    **run: Any,
) -> pd.DataFrame:
    """Defense rate against one set and clean accuracy against keep, for models that differ only in keep."""
    from robench.scoring import tradeoff as keep_tradeoff

    return keep_tradeoff(set_name, models, **run)


def autoattack(
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
    **run: Any,
) -> pd.DataFrame:
    """White-box robust accuracy under AutoAttack (standard: APGD-CE, APGD-T, FAB-T, Square), per model.

    As RobustBench reports it: on the first N test images, the fraction classified correctly after the attack
    (images misclassified when clean count as not robust).
    """
    from robench.scoring import autoattack_scores

    extra = {k: v for k, v in {"attacks": attacks, "steps": steps, "queries": queries}.items() if v is not None}
    return autoattack_scores(models, n=n, eps=eps, norm=norm, seed=seed, batch_size=batch_size, **run, **extra)


def _autoattack_shown(df: pd.DataFrame) -> pd.DataFrame:
    shown = df.assign(eps=[f"{e:g}" if nm == "l2" else f"{round(e * 255, 2):g}/255"
                           for e, nm in zip(df["eps"], df["norm"], strict=True)])
    return shown[["model", "clean_accuracy", "robust_accuracy", "n", "eps", "norm", "attacks", "arch", "keep"]]


def folder(
    data_dir: Path = typer.Option(..., "--data-dir", metavar="FOLDER",
                                  help="The test-only folder: DIR/<class>/* (or DIR/test/<class>/*), class folders "
                                       "named as the models' classes."),
    models: str = MODELS,
    n: int = N,
    seed: int = SEED,
    batch_size: int = typer.Option(256, help="Inference batch size."),
    **run: Any,
) -> pd.DataFrame:
    """Accuracy on another test set, a test-only image folder (e.g. Stylized-ImageNet), beside clean accuracy.

    Its class folders are matched by name to each model's classes; a class missing from either side is an error.
    """
    from robench.scoring import folder_scores

    return folder_scores(models, data_dir=data_dir, n=n, seed=seed, batch_size=batch_size, **run)


def _folder_shown(df: pd.DataFrame) -> pd.DataFrame:
    shown = df[["model", "accuracy", "clean_accuracy", "n", "arch", "keep", "placement"]].copy()
    shown[["accuracy", "clean_accuracy"]] = (shown[["accuracy", "clean_accuracy"]].astype(float) * 100).round(2)
    return shown


def _tradeoff_title(df: pd.DataFrame | None, options: dict) -> str | None:
    return f"keep trade-off against {options['set_name']}" if options.get("set_name") else None


# every score, once: `robench scores X` and (with a figure) `robench plot X` are made from these
SCORES = {score.name: score for score in (
    Score(boundary, lambda df, o: "Boundary-attack score (median ||delta||^2 / pixels)",
          lambda df: df.drop(columns="reason"), notes=_boundary_notes),
    Score(noise, lambda df, o: f"Gaussian noise: accuracy (%) on {df['n'].iloc[0]} images",
          lambda df: curve_table(df, "sigma"), "noise_plot", columns=("model", "sigma", "accuracy"),
          rates=True),
    Score(shuffle, lambda df, o: f"Patch shuffle: accuracy (%) on {df['n'].iloc[0]} images",
          lambda df: curve_table(df, "k"), "shuffle_plot", columns=("model", "k", "accuracy"),
          rates=True),
    Score(tradeoff, _tradeoff_title, None, "tradeoff_plot", _tradeoff_title,
          columns=("keep", "defense_rate", "clean_accuracy")),
    Score(autoattack, lambda df, o: "AutoAttack robust accuracy", _autoattack_shown, rates=True),
    Score(folder, lambda df, o: f"accuracy (%) on {Path(df['folder'].iloc[0]).name} ({df['n'].iloc[0]} images)",
          _folder_shown, "folder_plot", columns=("model", "accuracy", "clean_accuracy"), rates=True),
)}
for _score in SCORES.values():
    scores_app.command(_score.name)(scores_command(_score))
