"""Accuracy on another test set: a test-only image folder whose classes match the models' by name.

The papers' texture-vs-shape experiment (Stylized-ImageNet): models trained on one dataset are evaluated on
stylized versions of its test images, which keep the shapes and replace the textures; defective models keep
more of their accuracy there.

The folder is ``DIR/test/<class>/*`` when ``DIR/test`` exists, else ``DIR/<class>/*``. Its class folders are
matched BY NAME to the class names each model recorded (``DatasetRef.classes``), whatever their order; a
class missing from either side is an error. Each model sees the images as it saw its own test images (see
:func:`robench.datasets.folders.view`): a model trained on a streamed folder gets the same resize + centre crop at its
recorded image size; other models take images of their input size as they are, and others resized (shorter
side) and centre-cropped to it. Grayscale models see the images converted to grayscale, colour ones in RGB.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd
import torch

from robench import store
from robench.checks import checked
from robench.context import takes_context
from robench.datasets.folders import Tree, check_workers, few, scan_test_only, view
from robench.datasets.splits import images_at
from robench.errors import RobenchError
from robench.events import emitter
from robench.records import DatasetRef
from robench.scoring.matrix import Callback, Patterns, Scorer, select
from robench.stats import CI_LEVEL, add_rate_ci, check_ci

COLUMNS = ["model", "accuracy", "clean_accuracy", "n", "folder", "dataset", "arch", "keep", "placement",
           "precision", "ci_low", "ci_high", "ci_method", "ci_level"]


def class_map(tree: Tree, ref: DatasetRef, model: str) -> torch.Tensor:
    """(K_folder,) int64: the model's class index of each of the folder's classes (matched by name)."""
    if not ref.classes:
        raise RobenchError(f"model '{model}' records no class names ({ref.label}), so the folder's classes cannot "
                           f"be matched to its outputs; pick other --models")
    known = {c: i for i, c in enumerate(ref.classes)}
    unknown = [c for c in tree.classes if c not in known]
    if unknown:
        raise RobenchError(f"{tree.root} has class folder(s) {few(unknown)} that model '{model}' does not know "
                           f"(its {ref.label} classes: {few(list(ref.classes))}); remove them or pick other --models")
    missing = [c for c in ref.classes if c not in set(tree.classes)]
    if missing:
        raise RobenchError(f"{tree.root} lacks class folder(s) {few(missing)} of model '{model}' ({ref.label}); "
                           f"every class of the model needs a folder of the same name")
    return torch.tensor([known[c] for c in tree.classes], dtype=torch.int64)


@checked
@takes_context
def folder_scores(
    models: Patterns = "*",
    workspace: str | os.PathLike | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    n: int | None = None,
    seed: int = 0,
    device: str | None = None,
    workers: int | None = None,
    batch_size: int = 256,
    callback: Callback | None = None,
    precision: str = "fp32",
    ci: str = "wilson",
    ci_level: float = CI_LEVEL,
) -> pd.DataFrame:
    """Accuracy of every model on the test-only folder ``data_dir`` (e.g. Stylized-ImageNet), beside its clean
    accuracy on its own test split.

    ``n`` caps the images (a seeded random subset); ``precision`` is the autocast dtype of the predictions.
    Columns: model, accuracy, clean_accuracy, n, folder, dataset, arch, keep, placement, precision (accuracies
    as fractions in [0, 1]), and the ``ci_level`` interval of the accuracy by ``ci`` (ci_low, ci_high, ci_method,
    ci_level; see :mod:`robench.stats`).
    """
    check_ci(ci, ci_level)
    if data_dir is None:
        raise RobenchError("pass --data-dir: the test-only folder (class subfolders, or a test/ of them) to score")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise RobenchError(f"--n must be a positive number of images, got {n}")
    tree = scan_test_only(Path(data_dir))
    workers = check_workers(workers)
    scorer = Scorer(workspace, device, batch_size=batch_size, precision=precision, workers=workers)
    names = select(store.list_model_names(workspace), models, "model", workspace)
    maps = {name: class_map(tree, scorer.record(name).dataset, name) for name in names}
    idx = torch.arange(len(tree))
    if n is not None and n < len(tree):
        idx = torch.randperm(len(tree), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    groups: dict[tuple, list[str]] = {}  # models that see the images the same way share one decoding pass
    for name in names:
        ref = scorer.record(name).dataset
        key = (ref.in_channels, ref.input_size, ref.stream)
        groups.setdefault(key, []).append(name)
    emit = emitter(callback)
    emit("start", {"label": "folder score", "total": len(names), "done": 0})
    correct = dict.fromkeys(names, 0)
    done = 0
    for (channels, size, streamed), group in groups.items():
        split = view(tree, streamed, channels, size, workers)
        pieces = ((x, y) for _, x, y in split.batches(batch_size)) if len(idx) == len(tree) else images_at(
            split, idx)
        for images, labels in pieces:
            for name in group:
                correct[name] += int((scorer.predict(name, images) == maps[name][labels]).sum())
        for name in group:
            done += 1
            emit("step", {"done": done, "model": name, "info": name})
    rows = []
    for name in names:
        rec = scorer.record(name)
        rows.append({"model": name, "accuracy": correct[name] / len(idx), "clean_accuracy": rec.clean_accuracy,
                     "n": len(idx), "folder": str(tree.root), "dataset": rec.dataset.label,
                     **scorer.model_columns(name), "precision": scorer.precision})
    df = add_rate_ci(pd.DataFrame(rows, columns=COLUMNS), "accuracy", "", ci, ci_level)
    return df.assign(ci_method=ci, ci_level=ci_level if ci != "none" else math.nan)
