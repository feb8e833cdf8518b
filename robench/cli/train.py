"""`robench train` and `robench models`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import typer

from robench.checks import numbers
from robench.cli import names
from robench.cli.options import (
    DATA_DIR,
    DEVICE,
    FORMAT,
    OUT,
    WORKERS,
    WORKSPACE,
    Arch,
    Augment,
    Dataset,
    Format,
    MaskMode,
    Placement,
    Precision,
    Preset,
    Regularizer,
    value,
)
from robench.cli.render import Bars, check_out, cli_errors, err, out, output, table
from robench.context import RunContext


def _train_info(kind: str, p: dict) -> str | None:
    if kind == "batch":
        return (f"epoch {p['epoch'] + 1} loss {p['loss']:.3f} acc {p['accuracy']:.3f} "
                f"{p['images_per_s']:.0f} img/s")
    return None


@cli_errors
def train(
    arch: Arch = typer.Argument(..., help="Architecture.", show_default=False),
    dataset: Dataset = typer.Option("cifar10", help="Dataset (folder: an image tree given by --data-dir)."),
    data_dir: Path = DATA_DIR,
    workspace: Path = WORKSPACE,
    name: str = typer.Option(None, help="Model name (default: the architecture, plus keep and placement)."),
    preset: Preset = typer.Option("paper", help="Recipe preset."),
    epochs: int = typer.Option(None, help="Override the preset's epochs."),
    batch_size: int = typer.Option(None, help="Override the preset's batch size."),
    lr: float = typer.Option(None, help="Override the preset's learning rate."),
    milestones: str = typer.Option(None, help="Epochs at which lr is divided by 10, e.g. 150,250."),
    width: int = typer.Option(None, help="Base channels (default: the paper's); small widths suit CPUs."),
    keep: float = typer.Option(1.0, help="Keep probability of defective layers, in (0, 1]; 1 = standard."),
    placement: Placement = typer.Option("bottom", help="Where defective layers go (per architecture: see below)."),
    keep_top: float = typer.Option(None, help="Separate keep for the top layers (e.g. 0.3-Bottom, 0.7-Top)."),
    mask: MaskMode = typer.Option("neuron", help="Mask mode: per neuron, whole channels, one spatial mask."),
    widen: int = typer.Option(1, help="Multiply the channels of the defective blocks by K."),
    mask_seed: int = typer.Option(None, help="Seed of the masks (default: --seed)."),
    ensemble: int = typer.Option(1, help="Train N members with different masks; logits averaged (EN)."),
    regularizer: Regularizer = typer.Option("none", help="Dropout baseline in the top blocks."),
    drop_keep: float = typer.Option(0.9, help="Keep probability of the SpatialDropout/DropBlock baseline."),
    label_smoothing: float = typer.Option(None, help="Label smoothing (baseline), e.g. 0.1."),
    adv_train: bool = typer.Option(False, "--adv-train", help="Madry PGD adversarial training (8/255, 2/255, 7)."),
    augment: Augment = typer.Option(None, help="Augmentation (default: the dataset's)."),
    upsample: float = typer.Option(1.0, help="Upsample the input by this factor (larger feature maps)."),
    strides: str = typer.Option(None, help="Override the downsampling strides, e.g. 1,1,2,2."),
    seed: int = typer.Option(0, help="Seed for weights, masks and data order."),
    seeds: str = typer.Option(None, help="Train one replicate per seed, e.g. 0,1,2 (names get -seedN; see "
                                         "`matrix --by-config`)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from its checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing model of the same name."),
    device: str = DEVICE,
    precision: Precision = typer.Option(None, "--precision", help="Autocast precision of the training steps "
                                                                  "(default: bf16 on CUDA, fp32 on CPU)."),
    compile: bool = typer.Option(False, "--compile", help="Run the model through torch.compile (slow first epoch)."),
    stream: bool = typer.Option(None, "--stream/--in-memory",
                                help="Folder datasets: stream images from disk, or decode them all into memory "
                                     "(default: automatic, see docs/guides/own-data.md)."),
    image_size: int = typer.Option(None, help="Streamed folders: train and test at this size (default 224)."),
    workers: int = WORKERS,
) -> None:
    """Train a standard or defective model and save it in the workspace."""
    from robench import api

    if seeds is not None and seed != 0:
        raise typer.BadParameter("give --seed or --seeds, not both", param_hint="--seeds")
    replicates = numbers(seeds, "seeds") if seeds is not None else [seed]
    if not replicates or len(set(replicates)) != len(replicates):
        raise typer.BadParameter(f"expected distinct seeds, got '{seeds}'", param_hint="--seeds")
    context = RunContext(workspace=workspace, data_dir=data_dir, device=device, precision=value(precision),
                         workers=workers)
    settings = dict(  # the model spec's and the recipe's fields, as train()'s keywords
        dataset=value(dataset), preset=value(preset), epochs=epochs,
        batch_size=batch_size, lr=lr, milestones=numbers(milestones, "milestones"), width=width, keep=keep,
        placement=value(placement), keep_top=keep_top, mask=value(mask), widen=widen, mask_seed=mask_seed,
        ensemble=ensemble, regularizer=value(regularizer), drop_keep=drop_keep, label_smoothing=label_smoothing,
        adv_train=adv_train, augment=value(augment), upsample=upsample, strides=numbers(strides, "strides"),
        resume=resume, overwrite=overwrite, compile=compile, stream=stream, image_size=image_size,
    )
    for one in replicates:  # --seeds: one replicate per seed, named NAME-seedN (or the default name with -seedN)
        with Bars(value(arch), _train_info) as bars:
            record = api.train(value(arch), name=f"{name}-seed{one}" if name and seeds is not None else name,
                               seed=one, context=replace(context, callback=bars), **settings)
        _saved(record)


def _saved(record) -> None:
    """The note on stderr after a model is saved."""
    if record.path is not None:  # under torchrun only rank 0 saves
        err.print(f"saved [bold]{record.name}[/] to {record.path}: clean accuracy {record.clean_accuracy:.4f} "
                  f"({record.recipe.summary() if record.recipe else 'no recipe'})", highlight=False, soft_wrap=True)


train.__doc__ = "\n\n".join([
    "Train a standard or defective model and save it in the workspace.",
    "Defective layers (relu(mask * bn(conv(x)))) go where --placement says; per architecture:",
    "\b\n" + "\n".join(f"{n}: bottom = {b}; top = {t}" for n, b, t in names.PLACEMENT_HELP),
])

MODEL_COLUMNS = {"name": "name", "arch": "arch", "width": "width", "keep": "keep", "placement": "placement",
                 "mask": "mask", "dataset": "data", "origin": "origin", "epochs": "epochs", "augment": "augment",
                 "clean_accuracy": "clean acc"}


@cli_errors
def models(workspace: Path = WORKSPACE, fmt: Format = FORMAT, out_path: Path = OUT) -> None:
    """List the models in the workspace.

    --format csv|json writes every recorded column; markdown|latex the table as shown.
    """
    from robench.reports import tables
    from robench.workspace import models_frame

    check_out(out_path)
    df = models_frame(workspace)  # from the JSON records: no torch
    where = workspace or "robench-workspace"
    shown = df[list(MODEL_COLUMNS)].rename(columns=MODEL_COLUMNS)
    title = f"models in {where}"

    def show() -> None:
        if df.empty:
            err.print(f"no models in {where}; train one with `robench train` or import one with `robench import`",
                      soft_wrap=True)
        else:
            out.print(table(shown, title=title))

    output(value(fmt), out_path, show, lambda f: tables.tidy_text(df, f) if f in ("csv", "json")
           else tables.display_text(shown, f, title))
