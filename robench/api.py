"""The public Python API (re-exported by ``robench``): train, load and list models."""

from __future__ import annotations

import inspect
import logging
import os
import shutil
import time
import typing
from collections.abc import Callable
from dataclasses import fields, replace
from datetime import datetime, timezone
from typing import Any

import pandas as pd
import torch

from robench import store
from robench.checks import checked
from robench.context import takes_context
from robench.datasets import DatasetInfo, load_dataset, resolve_dataset
from robench.datasets import augment as augmentation
from robench.errors import ArgumentError, RobenchError, UsageError
from robench.importing import import_model
from robench.models import DefectSpec, ModelSpec, create_model, default_model_name, load_model
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

__all__ = ["ModelSpec", "Recipe", "default_model_name", "import_model", "list_workspace_models", "load_model",
           "load_set", "planned_model_name", "settings", "train", "train_seeds"]

load_set = store.load_set


# train()'s recipe keywords: name -> (type, default); a value replaces the recipe's (None keeps it; the recipe is
# the preset's for the dataset unless a Recipe is given)
RECIPE_KEYWORDS: dict[str, tuple[Any, Any]] = {
    "epochs": (int | None, None), "batch_size": (int | None, None), "lr": (float | None, None),
    "milestones": (list[int] | None, None), "label_smoothing": (float | None, None), "augment": (str | None, None),
    "adv_train": (bool, False),
}
MODEL_KEYWORDS = tuple(f.name for f in fields(ModelSpec) if f.name != "arch")  # ModelSpec's fields as keywords


def settings(arch: str | ModelSpec, *, recipe: Recipe | None = None, preset: str | None = None,
             dataset: str = "cifar10", name: str | None = None, **options: Any) -> tuple[ModelSpec, Recipe, str]:
    """The model spec, recipe and model name a :func:`train` call stands for (checked, nothing run).

    ``arch`` (an architecture's name or a :class:`ModelSpec`) with each model keyword of ``options`` (a field of
    ModelSpec: ``keep``, ``width``, ``seed``, ...) in place of its field; ``recipe`` (default: ``preset``'s, itself
    by default ``paper``, for ``dataset``) with each recipe keyword (:data:`RECIPE_KEYWORDS`) in place of its value.
    A keyword given as None leaves the field as it is.
    """
    unknown = sorted(set(options) - set(MODEL_KEYWORDS) - set(RECIPE_KEYWORDS))
    if unknown:
        raise ArgumentError(f"train(): got an unexpected keyword argument '{unknown[0]}'")
    given = {k: v for k, v in options.items() if v is not None and k in MODEL_KEYWORDS}
    if isinstance(arch, ModelSpec):
        spec = replace(arch, **given) if given else arch
    elif isinstance(arch, str):
        spec = ModelSpec(arch, **given)
    else:
        raise UsageError(f"arch = {arch!r}: expected an architecture's name or a robench.ModelSpec")
    if recipe is not None and not isinstance(recipe, Recipe):
        raise UsageError(f"recipe = {recipe!r}: expected a robench.Recipe (or give preset and the recipe keywords)")
    if recipe is not None and preset is not None:
        raise UsageError("give a recipe or a preset, not both: the recipe is the whole training recipe")
    changes = {k: options.get(k) for k in RECIPE_KEYWORDS}
    changes["adv_train"] = changes["adv_train"] or None  # False: as the recipe says
    recipe = recipe_from(recipe if recipe is not None else preset_recipe(preset or "paper", dataset), **changes)
    name = name or spec.default_name(label_smoothing=recipe.label_smoothing, adv_train=recipe.adv_train)
    return spec, recipe, store.check_name(name)


def planned_model_name(arch: str | ModelSpec, **train_kwargs: Any) -> str:
    """The name ``train(arch, **train_kwargs)`` would save the model under (validating the options)."""
    try:
        bound = inspect.signature(train).bind_partial(arch, **train_kwargs)
    except TypeError as err:
        raise RobenchError(f"bad training option: {err}") from None
    args = bound.arguments
    return settings(args.pop("arch"), **{k: v for k, v in args.items() if k in SETTINGS})[2]


def _keyword_form(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Spell out :func:`train`'s keyword form in its signature: ModelSpec's fields and the recipe keywords in place
    of its ``**options``, so ``help(robench.train)``, the argument checks and the suite schema all see them."""
    signature = inspect.signature(fn)
    hints = typing.get_type_hints(ModelSpec)
    keyword = inspect.Parameter.KEYWORD_ONLY
    extra = [inspect.Parameter(f.name, keyword, default=f.default, annotation=hints[f.name])
             for f in fields(ModelSpec) if f.name != "arch"]
    extra += [inspect.Parameter(k, keyword, default=d, annotation=t) for k, (t, d) in RECIPE_KEYWORDS.items()]
    kept = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
    fn.__signature__ = signature.replace(parameters=kept + extra)  # type: ignore[attr-defined]
    fn.__annotations__ = {**fn.__annotations__, **{p.name: p.annotation for p in extra}}
    return fn


@checked
@takes_context
@_keyword_form
def train(
    arch: str | ModelSpec,
    *,
    recipe: Recipe | None = None,
    preset: str | None = None,
    dataset: str = "cifar10",
    name: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    compile: bool = False,
    stream: bool | None = None,
    image_size: int | None = None,
    workspace: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    device: str | None = None,
    precision: str | None = None,
    workers: int | None = None,
    callback: Callback | None = None,
    **options: Any,
) -> ModelRecord:
    """Train (or resume) a standard or defective model and save it in the workspace.

    The model is ``arch``: a :class:`~robench.models.ModelSpec`, or an architecture's name with the spec's fields
    as keywords (``keep``, ``placement``, ``width``, ``seed``, ...; beside a ModelSpec they replace its fields).
    The recipe is ``recipe`` (a :class:`~robench.training.Recipe`), else ``preset``'s (default ``paper``) for the
    dataset; the recipe keywords ``epochs``, ``batch_size``, ``lr``, ``milestones``, ``label_smoothing``,
    ``augment``, ``adv_train`` replace its values (``epochs`` alone scales the milestones). ``workspace``,
    ``data_dir``, ``device``, ``precision``, ``workers``, ``callback``: see :class:`~robench.RunContext`, which
    ``context=`` takes them as.

    Returns the saved :class:`~robench.records.ModelRecord` (name, config, dataset, recipe, clean accuracy, ...).
    Its recipe holds what was used: the milestones and the augmentation (``default`` resolved to the dataset's). A
    resumed run continues with the settings it was started with, read from its checkpoint (its precision
    included). ``precision``: fp32, bf16 or fp16 autocast for the training steps (default: bf16 on CUDA, fp32 on
    CPU), recorded in the model's record; ``compile``: run the model through torch.compile. ``stream`` /
    ``image_size`` / ``workers``: see :mod:`robench.datasets.folders`.
    """
    given_recipe = recipe is not None
    spec, recipe, name = settings(arch, recipe=recipe, preset=preset, dataset=dataset, name=name, **options)
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
                torch.manual_seed(spec.seed)  # weights are initialised from the run's seed
                model = create_model(spec.arch, num_classes=data.num_classes, in_channels=data.in_channels,
                                     input_size=data.input_size, **spec.geometry(), **spec.defects.to_dict())
                model.set_mean(data.pixel_mean())
                draft = ModelRecord(name=name, config=model.config, dataset=data.ref, seed=spec.seed,
                                    preset=None if given_recipe else preset or "paper", recipe=recipe,
                                    device=str(dev), precision=chosen)
            else:  # resume: everything comes from the checkpoint, whatever train() was called with
                _warn_if_changed(draft, spec.defects, recipe, spec.seed, precision)
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


SETTINGS = {"recipe", "preset", "dataset", "name", *MODEL_KEYWORDS, *RECIPE_KEYWORDS}  # settings()'s arguments


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


@takes_context
def list_workspace_models(workspace: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per saved model: name, arch, keep, placement, dataset, clean accuracy, ..."""
    from robench.workspace import models_frame

    return models_frame(workspace)
