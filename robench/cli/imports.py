"""`robench import`: bring your own model."""

from __future__ import annotations

from pathlib import Path

import typer

from robench.checks import numbers
from robench.cli import names
from robench.cli.options import DATA_DIR, DEVICE, WORKSPACE, Dataset, MaskMode, Placement, value
from robench.cli.render import cli_errors, err


@cli_errors
def import_cmd(
    name: str = typer.Argument(..., help="Name of the model in the workspace."),
    spec: str = typer.Option(..., "--from", help=f"Where the model comes from: {'; '.join(names.IMPORT_FORMS)}."),
    dataset: Dataset = typer.Option(..., help="The data the model classifies (folder: an image tree, --data-dir)."),
    data_dir: Path = DATA_DIR,
    workspace: Path = WORKSPACE,
    mean: str = typer.Option(None, help="Normalisation mean, 1 or C values in [0, 1] units (default: the weights' "
                                        "preset, else none)."),
    std: str = typer.Option(None, help="Normalisation std, 1 or C values (with --mean)."),
    gray_to_rgb: bool = typer.Option(False, "--gray-to-rgb",
                                     help="Feed a 3-channel model 1-channel data (the gray channel repeated)."),
    class_map: Path = typer.Option(None, help="JSON object mapping model output indices to dataset labels (index "
                                              "or class name); needed when their numbers differ."),
    arch: str = typer.Option(None, help=f"state-dict: the architecture the weights are for: a robench one "
                                        f"({', '.join(names.ARCHITECTURES)}), torchvision:NAME or timm:NAME."),
    width: int = typer.Option(None, help="state-dict: the architecture's base channels."),
    keep: float = typer.Option(None, help="state-dict: keep probability of the defective layers."),
    placement: Placement = typer.Option(None, help="state-dict: where the defective layers are."),
    keep_top: float = typer.Option(None, help="state-dict: separate keep for the top layers."),
    mask: MaskMode = typer.Option(None, help="state-dict: mask mode."),
    widen: int = typer.Option(None, help="state-dict: channel multiplier of the defective blocks."),
    ensemble: int = typer.Option(None, help="state-dict: number of ensemble members."),
    upsample: float = typer.Option(None, help="state-dict: input upsampling factor."),
    strides: str = typer.Option(None, help="state-dict: downsampling strides, e.g. 1,1,2,2."),
    threat_model: str = typer.Option(None, help="robustbench: Linf (default), L2 or corruptions."),
    rb_dataset: str = typer.Option(None, help="robustbench: cifar10, cifar100 or imagenet (default: --dataset)."),
    evaluate: bool = typer.Option(True, "--evaluate/--no-evaluate", help="Record the clean test accuracy."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing model of the same name."),
    device: str = DEVICE,
) -> None:
    """Import a model robench did not train; it is then a source, a target and a row like any other.

    torchvision:NAME[:WEIGHTS] and timm:NAME[:pretrained] build library models; robustbench:NAME loads a RobustBench
    model.

    state-dict:FILE loads weights (torch.save or safetensors; never unpickled) into --arch: a robench architecture
    (with its options: --width, --keep ...), torchvision:NAME or timm:NAME.

    torchscript:FILE and exported:FILE (torch.export) read saved programs.

    python:MODULE:FUNCTION calls your own function returning an nn.Module: this runs your code, now and at every
    load.

    The import checks the model on a batch of the dataset's test images and stores it with its normalisation
    inside, taking images in [0, 1].
    """
    from robench.importers import parse_spec

    parse_spec(spec)  # a mistyped SPEC or a missing file is answered before torch loads
    from robench import api

    record = api.import_model(
        name, spec, dataset=value(dataset), data_dir=data_dir, workspace=workspace, arch=arch,
        mean=numbers(mean, "mean"), std=numbers(std, "std"), gray_to_rgb=gray_to_rgb, class_map=class_map,
        threat_model=threat_model, rb_dataset=rb_dataset, evaluate=evaluate, overwrite=overwrite, device=device,
        width=width, keep=keep, placement=value(placement), keep_top=keep_top, mask=value(mask), widen=widen,
        ensemble=ensemble, upsample=upsample, strides=numbers(strides, "strides"))
    accuracy = f": clean accuracy {record.clean_accuracy:.4f}" if record.clean_accuracy is not None else ""
    err.print(f"imported [bold]{record.name}[/] ({record.arch}) to {record.path}{accuracy}", highlight=False)
