"""The public Python API (re-exported by ``robench``): train, load and list models."""

from __future__ import annotations

import inspect
import logging
import os
import shutil
import time
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import pandas as pd
import torch

from robench import store
from robench.checks import checked
from robench.datasets import DatasetInfo, load_dataset, resolve_dataset
from robench.datasets import augment as augmentation
from robench.errors import RobenchError
from robench.importing import import_model
from robench.models import DefectSpec, create_model, load_model, model_entry
from robench.records import ModelRecord
from robench.runtime import check_precision, environment, pick_device, resolve_precision
from robench.training import (
    Callback,
    Recipe,
    dist_context,
    fit,
    load_checkpoint,
    recipe_from,
)
from robench.training import (
    preset as preset_recipe,
)

log = logging.getLogger(__name__)

__all__ = ["default_model_name", "import_model", "list_workspace_models", "load_model", "load_set",
           "planned_model_name", "train", "train_seeds"]

load_set = store.load_set


def default_model_name(arch: str, spec: DefectSpec, *, seed: int = 0, ensemble: int = 1, upsample: float = 1.0,
                       strides: list[int] | None = None, label_smoothing: float = 0.0, adv_train: bool = False) -> str:
    """Readable default name: the architecture for a standard model, plus what makes it different.

    >>> default_model_name("resnet18", DefectSpec(keep=0.1))
    'resnet18-keep0.1-bottom'
    """
    parts = [arch]
    parts += [f"keep{k:g}-{group}" for group, k in sorted(spec.group_keeps().items())]
    if spec.mask != "neuron" and not spec.is_standard:
        parts.append(spec.mask)
    if spec.widen > 1 and not spec.is_standard:
        parts.append(f"x{spec.widen}")
    if spec.regularizer != "none":
        parts.append(spec.regularizer)
    parts += [f"en{ensemble}"] if ensemble > 1 else []
    parts += [f"up{upsample:g}"] if upsample != 1 else []
    parts += ["s" + "".join(map(str, strides))] if strides else []
    parts += [f"ls{label_smoothing:g}"] if label_smoothing else []
    parts += ["adv"] if adv_train else []
    parts += [f"seed{seed}"] if seed else []
    return "-".join(parts)


def _settings(args: dict[str, Any]) -> tuple[DefectSpec, Recipe, str]:
    """The defect spec, recipe and model name that train() arguments ``args`` stand for."""
    model_entry(args["arch"])
    spec = DefectSpec(keep=args["keep"], placement=args["placement"], keep_top=args["keep_top"], mask=args["mask"],
                      widen=args["widen"], mask_seed=args["seed"] if args["mask_seed"] is None else args["mask_seed"],
                      regularizer=args["regularizer"], drop_keep=args["drop_keep"], block_size=args["block_size"])
    recipe = recipe_from(preset_recipe(args["preset"], args["dataset"]), epochs=args["epochs"],
                         batch_size=args["batch_size"], lr=args["lr"], milestones=args["milestones"],
                         label_smoothing=args["label_smoothing"], augment=args["augment"],
                         adv_train=args["adv_train"] or None)
    name = args["name"] or default_model_name(
        args["arch"], spec, seed=args["seed"], ensemble=args["ensemble"], upsample=args["upsample"],
        strides=args["strides"], label_smoothing=recipe.label_smoothing, adv_train=recipe.adv_train)
    return spec, recipe, store.check_name(name)


def planned_model_name(arch: str, **train_kwargs: Any) -> str:
    """The name ``train(arch, **train_kwargs)`` would save the model under (validating the options)."""
    try:
        bound = inspect.signature(train).bind_partial(arch, **train_kwargs)
    except TypeError as err:
        raise RobenchError(f"bad training option: {err}") from None
    bound.apply_defaults()
    return _settings(bound.arguments)[2]


@checked
def train(
    arch: str,
    *,
    dataset: str = "cifar10",
    data_dir: str | os.PathLike | None = None,
    workspace: str | os.PathLike | None = None,
    name: str | None = None,
    preset: str = "paper",
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    milestones: list[int] | None = None,
    label_smoothing: float | None = None,
    augment: str | None = None,
    adv_train: bool = False,
    width: int | None = None,
    keep: float = 1.0,
    placement: str = "bottom",
    keep_top: float | None = None,
    mask: str = "neuron",
    widen: int = 1,
    mask_seed: int | None = None,
    regularizer: str = "none",
    drop_keep: float = 0.9,
    block_size: int = 3,
    upsample: float = 1.0,
    strides: list[int] | None = None,
    ensemble: int = 1,
    seed: int = 0,
    resume: bool = False,
    overwrite: bool = False,
    device: str | None = None,
    precision: str | None = None,
    compile: bool = False,
    stream: bool | None = None,
    image_size: int | None = None,
    workers: int | None = None,
    callback: Callback | None = None,
) -> ModelRecord:
    """Train (or resume) a standard or defective model and save it in the workspace.

    Returns the saved :class:`~robench.records.ModelRecord` (name, config, dataset, recipe, clean accuracy, ...).
    Its recipe holds what was used: the milestones (``epochs`` alone scales the preset's) and the augmentation
    (``default`` resolved to the dataset's). A resumed run continues with the settings it was started with,
    read from its checkpoint (its precision included). ``precision``: fp32, bf16 or fp16 autocast for the
    training steps (default: bf16 on CUDA, fp32 on CPU), recorded in the model's record; ``compile``: run the
    model through torch.compile. ``stream`` / ``image_size`` / ``workers``: see :mod:`robench.datasets.folders`.
    """
    args = {k: v for k, v in locals().items() if k not in ("workspace", "data_dir", "resume", "overwrite",
                                                             "device", "precision", "compile", "callback", "stream",
                                                             "image_size", "workers")}
    spec, recipe, name = _settings(args)
    if precision is not None:
        check_precision(precision)
    directory = store.check_target(store.model_dir(name, workspace), overwrite)
    dev = pick_device(device)  # a device this machine lacks is refused before anything is written
    checkpoint = directory / store.CHECKPOINT
    dist = dist_context()
    with _claimed(name, directory, workspace, dist.main):  # one process trains a name at a time
        exists = (directory / store.MODEL_META).exists() or checkpoint.exists()
        dist.barrier()  # every rank has looked before rank 0 may delete or write anything
        draft: ModelRecord | None = None
        if exists and overwrite:
            if dist.main:
                shutil.rmtree(directory)
        elif exists and not resume:
            raise RobenchError(f"model '{name}' already exists in {store.workspace_dir(workspace)}; "
                               f"pass --resume to continue it, --overwrite to replace it, or --name for a new one")
        elif resume and checkpoint.exists():
            draft = _checkpoint_record(checkpoint)
        elif resume and (directory / store.MODEL_META).exists():
            log.info("model %s is already fully trained", name)
            return store.read_model(name, workspace)

        chosen = resolve_precision(precision, dev, training=True)
        started = time.time()
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):  # the caller's RNGs stay as they were
            if draft is None:
                data = load_dataset(dataset, data_dir, workers=workers, stream=stream, image_size=image_size)
                recipe = resolve_augment(recipe, data)
                torch.manual_seed(seed)  # weights are initialised from the run's seed
                model = create_model(arch, num_classes=data.num_classes, in_channels=data.in_channels,
                                     input_size=data.input_size, width=width, upsample=upsample, strides=strides,
                                     ensemble=ensemble, **spec.to_dict())
                model.set_mean(data.pixel_mean())
                draft = ModelRecord(name=name, config=model.config, dataset=data.ref, seed=seed, preset=preset,
                                    recipe=recipe, device=str(dev), precision=chosen)
            else:  # resume: everything comes from the checkpoint, whatever train() was called with
                _warn_if_changed(draft, spec, recipe, seed, precision)
                data = resolve_dataset(draft.dataset, data_dir, workers=workers)
                model = create_model(draft.config.arch, **draft.config.build_options())
                recipe = draft.recipe or recipe
            summary = fit(model, data, recipe, seed=draft.seed or 0, checkpoint=checkpoint, device=dev, resume=resume,
                          callback=callback, info={"record": draft.to_json()}, precision=draft.precision,
                          compile=compile, workers=workers)
        if not dist.main:
            return replace(draft, history=summary["history"])
        record = replace(draft, clean_accuracy=summary["clean_accuracy"], train_accuracy=summary["train_accuracy"],
                         history=summary["history"], wall_time_s=summary["wall_time_s"],
                         versions=environment(), created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        record = store.save_model(model.cpu().state_dict(), record, directory)
        checkpoint.unlink(missing_ok=True)
        log.info("saved %s (clean accuracy %.4f) in %.1fs", name, summary["clean_accuracy"], time.time() - started)
        if record.chance_warning():
            log.warning(record.chance_warning())
        return record


def _claimed(name: str, directory: os.PathLike, workspace: Any, main: bool) -> Any:
    """A claim on a model's name (rank 0 claims it for a whole torchrun job): a second process that trains the
    same name at once fails at the start instead of overwriting the first one's checkpoint."""
    import contextlib

    if not main:
        return contextlib.nullcontext()
    try:
        return store.claim(directory)
    except store.Busy:
        raise RobenchError(f"model '{name}' is being trained by another process in {store.workspace_dir(workspace)} "
                           f"now; wait for it (then --resume), or pass --name for a new one") from None


def train_seeds(arch: str, seeds: list[int], *, name: str | None = None, **train_kwargs: Any) -> list[ModelRecord]:
    """Train one replicate of a configuration per seed (weights, masks and data order all follow the seed).

    The replicates are named as :func:`train` names them (``...-seedN`` for N != 0), or ``NAME-seedN`` with
    ``name``. Returns their records in the order of ``seeds``; ``robench.scoring.by_config`` averages a matrix's
    cells over them.
    """
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise RobenchError(f"--seeds needs distinct seeds, e.g. 0,1,2; got {','.join(map(str, seeds)) or 'none'}")
    if "seed" in train_kwargs:
        raise RobenchError("pass either seed or seeds, not both")
    return [train(arch, name=f"{name}-seed{s}" if name else None, seed=s, **train_kwargs) for s in seeds]


def resolve_augment(recipe: Recipe, data: DatasetInfo) -> Recipe:
    """The recipe with ``augment="default"`` replaced by the dataset's default (what the record keeps)."""
    return replace(recipe, augment=augmentation.resolve(recipe.augment, data.default_augment))


def _checkpoint_record(checkpoint: os.PathLike) -> ModelRecord:
    """The record a checkpoint was started with (settings, dataset reference, seed)."""
    state = load_checkpoint(checkpoint)[1]
    if "record" not in state:
        raise RobenchError(f"{checkpoint} was written by robench 0.1, before typed records; finish that run with "
                           f"robench 0.1, or start it again with --overwrite")
    return ModelRecord.from_json(state["record"], checkpoint)


def _warn_if_changed(draft: ModelRecord, spec: DefectSpec, recipe: Recipe, seed: int, precision: str | None) -> None:
    """Log when --resume came with other settings than the run was started with (the started ones win)."""
    if recipe.augment == "default" and draft.recipe:  # resolved when the run started
        recipe = replace(recipe, augment=draft.recipe.augment)
    asked = (spec, recipe, seed, precision or draft.precision)
    if asked != (draft.config.defect, draft.recipe, draft.seed, draft.precision):
        log.warning("resuming %s with the options it was started with", draft.name)


def list_workspace_models(workspace: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per saved model: name, arch, keep, placement, dataset, clean accuracy, ..."""
    from robench.workspace import models_frame

    return models_frame(workspace)
