"""The public Python API (re-exported by ``robench``): train, load and list models."""

from __future__ import annotations

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
    model_entry(arch)
    spec = DefectSpec(keep=keep, placement=placement, keep_top=keep_top, mask=mask, widen=widen,
                      mask_seed=seed if mask_seed is None else mask_seed, regularizer=regularizer,
                      drop_keep=drop_keep, block_size=block_size)
    base = preset(preset_name, dataset)
    recipe = recipe_from(base, epochs=epochs, batch_size=batch_size, lr=lr, milestones=milestones,
                         label_smoothing=label_smoothing, augment=augment, adv_train=adv_train or None)
    name = store.check_name(name or default_model_name(
        arch, spec, seed=seed, ensemble=ensemble, upsample=upsample, strides=strides,
        label_smoothing=recipe.label_smoothing, adv_train=recipe.adv_train))
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
