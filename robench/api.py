"""The public Python API (re-exported by ``robench``): train, load and list models."""

from __future__ import annotations

import inspect
import logging
import os
import shutil
import time
from datetime import datetime, timezone
from typing import Any

import pandas as pd
import torch

from robench import store
from robench.data import load_dataset
from robench.errors import RobenchError
from robench.models import DefectSpec, create_model, model_entry
from robench.runtime import pick_device
from robench.training import (
    Callback,
    Recipe,
    dist_context,
    environment,
    fit,
    load_checkpoint,
    preset,
    recipe_dict,
    recipe_from,
)

log = logging.getLogger(__name__)

load_model = store.load_model
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
    recipe = recipe_from(preset(args["preset_name"], args["dataset"]), epochs=args["epochs"],
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


def train(
    arch: str,
    *,
    dataset: str = "cifar10",
    data_dir: str | os.PathLike | None = None,
    workspace: str | os.PathLike | None = None,
    name: str | None = None,
    preset_name: str = "paper",
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
    callback: Callback | None = None,
) -> dict:
    """Train (or resume) a standard or defective model and save it in the workspace.

    Returns the saved metadata (name, config, dataset, recipe, clean_accuracy, ...).
    """
    args = {k: v for k, v in locals().items() if k not in ("workspace", "data_dir", "resume", "overwrite",
                                                             "device", "callback")}
    spec, recipe, name = _settings(args)
    directory = store.model_dir(name, workspace)
    checkpoint = directory / store.CHECKPOINT
    dist = dist_context()
    exists = (directory / store.MODEL_META).exists() or checkpoint.exists()
    dist.barrier()  # every rank has looked before rank 0 may delete or write anything
    if exists and overwrite:
        if dist.main:
            shutil.rmtree(directory)
    elif exists and not resume:
        raise RobenchError(f"model '{name}' already exists in {store.workspace_dir(workspace)}; "
                           f"pass --resume to continue it, --overwrite to replace it, or --name for a new one")
    elif resume and checkpoint.exists():
        stored = load_checkpoint(checkpoint)[1]["args"]
        if stored != args:  # resume what was started, whatever options came with --resume
            log.warning("resuming %s with the options it was started with", name)
            return train(**stored, workspace=workspace, data_dir=data_dir, resume=True, device=device,
                         callback=callback)
    elif resume and (directory / store.MODEL_META).exists():
        log.info("model %s is already fully trained", name)
        return store.load_model_meta(name, workspace)

    data = load_dataset(dataset, data_dir)
    torch.manual_seed(seed)
    model = create_model(arch, num_classes=data.num_classes, in_channels=data.in_channels,
                         input_size=data.input_size, width=width, upsample=upsample, strides=strides,
                         ensemble=ensemble, **spec.to_dict())
    model.set_mean(data.pixel_mean())
    dev = pick_device(device)
    started = time.time()
    summary = fit(model, data, recipe, seed=seed, checkpoint=checkpoint, device=dev, resume=resume,
                  callback=callback, info={"args": args})
    if not dist.main:
        return {"name": name, "rank": dist.rank, **summary}
    meta = {
        "name": name, "kind": "model", "config": model.config, "dataset": data.describe(), "seed": seed,
        "recipe": recipe_dict(recipe), "preset": preset_name, "train_args": args,
        "clean_accuracy": summary["clean_accuracy"], "train_accuracy": summary["train_accuracy"],
        "history": summary["history"], "wall_time_s": summary["wall_time_s"], "device": str(dev),
        "versions": environment(), "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    meta = store.save_model(model.cpu(), meta, directory)
    checkpoint.unlink(missing_ok=True)
    log.info("saved %s (clean accuracy %.4f) in %.1fs", name, summary["clean_accuracy"], time.time() - started)
    meta["path"] = str(directory)
    return meta


def list_workspace_models(workspace: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per saved model: name, arch, keep, placement, dataset, clean accuracy, ..."""
    rows: list[dict[str, Any]] = []
    for meta in store.list_saved("models", store.MODEL_META, workspace):
        cfg = meta.get("config", {})
        rows.append({
            "name": meta.get("name"), "arch": cfg.get("name"), "width": cfg.get("width"),
            "keep": cfg.get("keep"), "placement": cfg.get("placement"), "keep_top": cfg.get("keep_top"),
            "mask": cfg.get("mask"), "ensemble": cfg.get("ensemble"), "dataset": meta.get("dataset", {}).get("dataset"),
            "epochs": len(meta.get("history", [])), "clean_accuracy": meta.get("clean_accuracy"),
            "wall_time_s": meta.get("wall_time_s"), "path": meta["path"],
        })
    return pd.DataFrame(rows, columns=["name", "arch", "width", "keep", "placement", "keep_top", "mask", "ensemble",
                                       "dataset", "epochs", "clean_accuracy", "wall_time_s", "path"])
