"""`robench train` and `robench models`."""

from __future__ import annotations

from pathlib import Path

import typer

from robench import api
from robench.cli.render import cli_errors, err, out, progress, table
from robench.data import AUGMENTS, list_datasets
from robench.models import MASK_MODES, PLACEMENTS, REGULARIZERS, list_models, model_entry
from robench.runtime import PRECISIONS
from robench.training import PRESETS


def _placements() -> str:
    return "\n\n".join(
        f"{n}: bottom = {model_entry(n).bottom}; top = {model_entry(n).top}" for n in list_models()
    )


def _ints(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(v) for v in text.replace(" ", "").split(",")]
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated integers, got '{text}'") from None


WORKSPACE = typer.Option(None, "--workspace", "-w", envvar="ROBENCH_WORKSPACE",
                         help="Workspace folder (default: ./robench-workspace).")
WORKERS = typer.Option(None, envvar="ROBENCH_WORKERS", min=0,
                       help="DataLoader workers decoding image files (default: CPU cores - 1, at most 8).")


@cli_errors
def train(
    arch: str = typer.Argument(..., help=f"Architecture: {', '.join(list_models())}."),
    dataset: str = typer.Option("cifar10", help=f"One of {', '.join(list_datasets())}."),
    data_dir: Path = typer.Option(None, envvar="ROBENCH_DATA", help="Data folder (default: ~/.cache/robench/data)."),
    workspace: Path = WORKSPACE,
    name: str = typer.Option(None, help="Model name (default: the architecture, plus keep and placement)."),
    preset: str = typer.Option("paper", help=f"Recipe preset: {', '.join(PRESETS)}."),
    epochs: int = typer.Option(None, help="Override the preset's epochs."),
    batch_size: int = typer.Option(None, help="Override the preset's batch size."),
    lr: float = typer.Option(None, help="Override the preset's learning rate."),
    milestones: str = typer.Option(None, help="Epochs at which lr is divided by 10, e.g. 150,250."),
    width: int = typer.Option(None, help="Base channels (default: the paper's); small widths suit CPUs."),
    keep: float = typer.Option(1.0, help="Keep probability of defective layers, in (0, 1]; 1 = standard."),
    placement: str = typer.Option("bottom", help=f"Where defective layers go: {', '.join(PLACEMENTS)}."),
    keep_top: float = typer.Option(None, help="Separate keep for the top layers (e.g. 0.3-Bottom, 0.7-Top)."),
    mask: str = typer.Option("neuron", help=f"Mask mode: {', '.join(MASK_MODES)}."),
    widen: int = typer.Option(1, help="Multiply the channels of the defective blocks by K."),
    mask_seed: int = typer.Option(None, help="Seed of the masks (default: --seed)."),
    ensemble: int = typer.Option(1, help="Train N members with different masks; logits averaged (EN)."),
    regularizer: str = typer.Option("none", help=f"Baseline in the top blocks: {', '.join(REGULARIZERS)}."),
    drop_keep: float = typer.Option(0.9, help="Keep probability of the SpatialDropout/DropBlock baseline."),
    label_smoothing: float = typer.Option(None, help="Label smoothing (baseline), e.g. 0.1."),
    adv_train: bool = typer.Option(False, "--adv-train", help="Madry PGD adversarial training (8/255, 2/255, 7)."),
    augment: str = typer.Option(None, help=f"Augmentation: {', '.join(AUGMENTS)} (default: the dataset's)."),
    upsample: float = typer.Option(1.0, help="Upsample the input by this factor (larger feature maps)."),
    strides: str = typer.Option(None, help="Override the downsampling strides, e.g. 1,1,2,2."),
    seed: int = typer.Option(0, help="Seed for weights, masks and data order."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from its checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing model of the same name."),
    device: str = typer.Option(None, help="cpu, cuda, cuda:1 ... (default: CUDA when present)."),
    precision: str = typer.Option(None, help=f"Autocast precision of the training steps: {', '.join(PRECISIONS)} "
                                             f"(default: bf16 on CUDA, fp32 on CPU)."),
    compile: bool = typer.Option(False, "--compile", help="Run the model through torch.compile (slow first epoch)."),
    stream: bool = typer.Option(None, "--stream/--in-memory",
                                help="Folder datasets: stream images from disk, or decode them all into memory "
                                     "(default: automatic, see the README)."),
    image_size: int = typer.Option(None, help="Streamed folders: train and test at this size (default 224)."),
    workers: int = WORKERS,
) -> None:
    """Train a standard or defective model and save it in the workspace."""
    bar = progress()
    task: dict = {}

    def on_event(kind: str, p: dict) -> None:
        if kind == "start":
            bar.start()
            total = p["epochs"] * p["steps_per_epoch"]
            task["id"] = bar.add_task(arch, total=total, completed=p["start_epoch"] * p["steps_per_epoch"], info="")
            task["steps"] = p["steps_per_epoch"]
        elif kind == "batch":
            bar.update(task["id"], completed=p["epoch"] * task["steps"] + p["step"],
                       info=f"epoch {p['epoch'] + 1} loss {p['loss']:.3f} acc {p['accuracy']:.3f} "
                            f"{p['images_per_s']:.0f} img/s")

    try:
        record = api.train(
            arch, dataset=dataset, data_dir=data_dir, workspace=workspace, name=name, preset=preset,
            epochs=epochs, batch_size=batch_size, lr=lr, milestones=_ints(milestones), width=width, keep=keep,
            placement=placement, keep_top=keep_top, mask=mask, widen=widen, mask_seed=mask_seed,
            ensemble=ensemble, regularizer=regularizer, drop_keep=drop_keep, label_smoothing=label_smoothing,
            adv_train=adv_train, augment=augment, upsample=upsample, strides=_ints(strides), seed=seed,
            resume=resume, overwrite=overwrite, device=device, precision=precision, compile=compile, stream=stream,
            image_size=image_size, workers=workers, callback=on_event,
        )
    finally:
        if bar.live.is_started:
            bar.stop()
    if record.path is not None:  # under torchrun only rank 0 saves
        err.print(f"saved [bold]{record.name}[/] to {record.path}: clean accuracy {record.clean_accuracy:.4f} "
                  f"({schedule_text(record.recipe or {})})", highlight=False, soft_wrap=True)


def schedule_text(recipe: dict) -> str:
    """'3 epochs, lr 0.1 /10 at epochs 1,2, augmentation flip': what a run used, from its record's recipe."""
    ms = recipe.get("milestones") or []
    decay = f" /{1 / recipe.get('gamma', 0.1):g} at epoch{'s' if len(ms) > 1 else ''} {','.join(map(str, ms))}" \
        if ms else " constant"
    return f"{recipe.get('epochs')} epochs, lr {recipe.get('lr'):g}{decay}, augmentation {recipe.get('augment')}"


train.__doc__ = f"""Train a standard or defective model and save it in the workspace.

Defective layers (``relu(mask * bn(conv(x)))``) go where --placement says; per architecture:

{_placements()}
"""


@cli_errors
def models(workspace: Path = WORKSPACE) -> None:
    """List the models in the workspace."""
    df = api.list_workspace_models(workspace)
    if df.empty:
        err.print(f"no models in {workspace or 'robench-workspace'}; train one with `robench train` or import one "
                  f"with `robench import`")
        return
    cols = {"name": "name", "arch": "arch", "width": "width", "keep": "keep", "placement": "placement",
            "mask": "mask", "dataset": "data", "origin": "origin", "epochs": "epochs", "augment": "augment",
            "clean_accuracy": "clean acc"}
    shown = df[list(cols)].rename(columns=cols)
    out.print(table(shown, title=f"models in {workspace or 'robench-workspace'}"))
