"""The cross-model matrix: defense success rate, transfer agreement and relation of every target on every set.

Definitions (the papers' "Scores"), for a target T and an adversarial set S made against source(s) A:

- ``n``: how many of S's examples have a CLEAN original that T classifies correctly;
- ``defense_rate``: among those n, the fraction whose adversarial version T classifies as the true label;
- ``agreement``: among those n, the fraction where T outputs A's adversarial label (``source_pred``);
- ``target_hit_rate`` (targeted sets only, NaN otherwise): among those n, the fraction where T outputs the
  example's target label: the targeted transfer success;
- ``ci_low`` / ``ci_high``: the ``ci_level`` interval of the defense rate (``agreement_ci_low`` /
  ``agreement_ci_high``: of the agreement; ``target_hit_rate_ci_low`` / ``..._high``: of the target hit rate) by
  ``ci_method`` (Wilson by default; see :mod:`robench.stats`);
- ``clean_ci_low`` / ``clean_ci_high``: the interval of the target's clean accuracy over its ``target_n_test`` test
  images;
- ``target_config`` / ``source_config``: the target's and the sources' configuration without their seeds (JSON),
  which :func:`robench.scoring.replicates.by_config` groups replicates by;
- ``relation``: ``white-box`` when T is one of A (same weights), ``gray-box`` when T has A's architecture and
  defect settings (another seed or mask draw), ``black-box`` otherwise.

A target's predictions on a set are cached under ``WORKSPACE/cache/predictions/<model sha256>/`` (see
:func:`cache_path`), so a later run only computes cells that are new.
"""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from robench import store
from robench.checks import checked
from robench.context import takes_context
from robench.datasets import DatasetInfo, resolve_dataset
from robench.errors import RobenchError
from robench.events import Callback, emitter
from robench.models import load_model
from robench.records import AttackParams, DatasetRef, ModelConfig, ModelRecord, Recipe, SetRecord, SourceRef
from robench.reports.labels import param_text
from robench.runtime import check_precision, pick_device, predict, prepare
from robench.stats import CI_LEVEL, add_rate_ci, check_ci
from robench.workspace import Patterns, select, split_patterns  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)


WHITE, GRAY, BLACK = "white-box", "gray-box", "black-box"
COLUMNS = [
    "target", "set", "source", "method", "attack", "params", "eps", "relation", "n", "n_set", "defense_rate",
    "agreement", "target_hit_rate", "target_clean_accuracy", "target_arch", "target_keep", "dataset", "target_sha256",
    "set_sha256", "precision", "ci_low", "ci_high", "agreement_ci_low", "agreement_ci_high", "target_hit_rate_ci_low",
    "target_hit_rate_ci_high", "clean_ci_low", "clean_ci_high", "ci_method", "ci_level", "target_n_test",
    "target_config", "source_config",
]


# ---------------------------------------------------------------- selection


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """'2/4' -> (2, 4): the 2nd of 4 shards (1-based); None or '' -> None."""
    if not text:
        return None
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise RobenchError(f"--shard takes I/N (e.g. 1/4), got '{text}'") from None
    if not 1 <= i <= n:
        raise RobenchError(f"--shard {text}: I must be between 1 and N")
    return i, n


def shard_of(names: list[str], shard: tuple[int, int] | None) -> list[str]:
    """The targets of shard (i, n): every n-th name of the sorted list, starting at the i-th."""
    if shard is None:
        return names
    i, n = shard
    return sorted(names)[i - 1::n]


def merge(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate shard results (tidy frames); a (target, set) cell present twice is an error."""
    missing = [sorted(set(COLUMNS[:9]) - set(f.columns)) for f in frames]
    if any(missing):
        raise RobenchError(f"not a matrix CSV (lacks columns {next(m for m in missing if m)}); merge the files that "
                           f"`robench matrix --out` wrote")
    df = pd.concat(frames, ignore_index=True)
    twice = df[df.duplicated(["target", "set"], keep=False)]
    if not twice.empty:
        cell = twice.iloc[0]
        raise RobenchError(f"cell ({cell['target']}, {cell['set']}) appears in more than one file; "
                           f"merge each shard once")
    return df.sort_values(["attack", "set", "target"], kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------- relation


def configuration(config: ModelConfig | None, recipe: Recipe | None = None) -> str:
    """A model's configuration without its seeds: its family (:attr:`~robench.records.ModelConfig.family`) and its
    training recipe."""
    fam = json.loads(config.family) if config else {}
    return json.dumps({"model": fam, "recipe": recipe.to_json() if recipe else {}}, sort_keys=True, default=str)


def relation(target: ModelRecord, sources: list[SourceRef]) -> str:
    """'white-box', 'gray-box' or 'black-box' of a target towards a set's sources (by weights hash, then family)."""
    sha = target.weights_sha256
    if any((sha and s.weights_sha256 == sha) or (not s.weights_sha256 and s.name == target.name) for s in sources):
        return WHITE
    return GRAY if any(s.family == target.config.family for s in sources) else BLACK


# ---------------------------------------------------------------- metrics


def cell_scores(labels: torch.Tensor, source_pred: torch.Tensor, clean_pred: torch.Tensor,
                adv_pred: torch.Tensor, targets: torch.Tensor | None = None) -> dict[str, float | int]:
    """n, defense_rate, agreement and target_hit_rate (NaN without ``targets``) from (N,) int64 tensors; rates are
    NaN when n == 0."""
    ok = clean_pred == labels
    n = int(ok.sum())
    if n == 0:
        return {"n": 0, "defense_rate": math.nan, "agreement": math.nan, "target_hit_rate": math.nan}
    defended = int((adv_pred[ok] == labels[ok]).sum())
    agreed = int((adv_pred[ok] == source_pred[ok]).sum())
    hit = math.nan if targets is None else int((adv_pred[ok] == targets[ok]).sum()) / n
    return {"n": n, "defense_rate": defended / n, "agreement": agreed / n, "target_hit_rate": hit}


def _fixed_params(method: str) -> dict:
    """Settings the attack registry records with every set of ``method`` but that are not tunable."""
    try:
        from robench.attacks import method_spec

        return dict(method_spec(method).fixed)
    except (ImportError, RobenchError):
        return {}


def attack_label(method: str, params: Mapping[str, Any] | None) -> str:
    """'pgd eps=16/255 step=1/255 steps=20': one attack configuration (tunable params), for grouping and titles."""
    fixed, params = _fixed_params(method), AttackParams(params)
    shown = {k: v for k, v in params.items() if v is not None and not (k in fixed and fixed[k] == v)
             and not (k == "targeted" and params.target is not None)}
    return " ".join([method, *(f"{k}={param_text(k, v, params.linf)}" for k, v in sorted(shown.items()))])


def mismatch(target: ModelRecord, set_record: SetRecord) -> str | None:
    """Why a target cannot score a set (another dataset, input shape or label space), or None."""
    t, d, name = target.dataset, set_record.dataset, set_record.name
    if not t.same_data(d):
        return f"set '{name}' is from dataset {d.label}, target '{target.name}' from {t.label}"
    if t.shape != d.shape:
        return (f"set '{name}' holds {'x'.join(map(str, d.shape))} images, target '{target.name}' takes "
                f"{'x'.join(map(str, t.shape))}")
    if t.num_classes != d.num_classes:
        return f"set '{name}' has {d.num_classes} classes, target '{target.name}' predicts {t.num_classes}"
    return None


# ---------------------------------------------------------------- cache


def cache_path(workspace: str | os.PathLike | None, model_sha: str, key: str, precision: str) -> Path:
    """WORKSPACE/cache/predictions/<model sha256>/<set sha256 or test-<dataset hash>>-<precision>.safetensors."""
    return store.workspace_dir(workspace) / "cache" / "predictions" / model_sha / f"{key}-{precision}.safetensors"


# ---------------------------------------------------------------- the scorer


class Scorer:
    """Loads models, datasets and clean test predictions once per run, and caches predictions on disk.

    Every prediction runs under autocast to ``precision`` (fp32: none) and is cached under that precision, so
    predictions of two precisions never mix.
    """

    def __init__(self, workspace: str | os.PathLike | None = None, device: str | None = None,
                 data_dir: str | os.PathLike | None = None, batch_size: int = 512, use_cache: bool = True,
                 *, precision: str = "fp32", workers: int | None = None) -> None:
        self.workspace, self.data_dir, self.batch_size, self.use_cache = workspace, data_dir, batch_size, use_cache
        self.workers = workers
        self.device = pick_device(device)
        self.precision = check_precision(precision)
        self.records: dict[str, ModelRecord] = {}
        self.models: dict[str, nn.Module] = {}
        self.datasets: dict[tuple, DatasetInfo] = {}
        self.test_preds: dict[str, torch.Tensor] = {}
        self.subset: dict[tuple[str, str], bool] = {}

    def record(self, name: str) -> ModelRecord:
        if name not in self.records:
            self.records[name] = store.read_model(name, self.workspace)
        return self.records[name]

    def model_columns(self, name: str) -> dict:
        """The columns a per-model score row shows about model ``name``: arch, keep, placement."""
        rec = self.record(name)
        return {"arch": rec.arch, "keep": rec.config.keep, "placement": rec.config.placement}

    def model(self, name: str) -> nn.Module:
        if name not in self.models:
            self.models[name] = prepare(load_model(name, self.workspace), self.device).eval()
        return self.models[name]

    def data(self, ref: DatasetRef) -> DatasetInfo:
        """The dataset a reference records, resolved once per run (see ``robench.datasets.resolve_dataset``)."""
        key = (ref.name, ref.fingerprint or ref.root, tuple(sorted(ref.options.items())))
        if key not in self.datasets:
            self.datasets[key] = resolve_dataset(ref, self.data_dir, workers=self.workers)
        return self.datasets[key]

    def dataset(self, name: str) -> DatasetInfo:
        """The dataset model ``name`` was trained on (loaded once)."""
        return self.data(self.record(name).dataset)

    def predict(self, name: str, images: torch.Tensor) -> torch.Tensor:
        """Labels (N,) of model ``name`` on images (N, C, H, W) in [0,1]."""
        return predict(self.model(name), images, batch_size=self.batch_size, device=self.device,
                       precision=self.precision)

    def clean_predictions(self, name: str) -> torch.Tensor:
        """Predictions (n_test,) of a model on its full test split: computed once per run, cached on disk."""
        if name in self.test_preds:
            return self.test_preds[name]
        data = self.dataset(name)
        path = cache_path(self.workspace, self.record(name).weights_sha256, "test-" + data.fingerprint[:32],
                          self.precision)
        pred = self._read(path, "pred")
        if pred is None or len(pred) != len(data.test):
            pred = torch.cat([self.predict(name, x) for _, x, _ in data.test.batches(8192)])
            self._write(path, {"pred": pred}, {"model": name, "dataset": data.ref.label})
        self.test_preds[name] = pred
        return pred

    def clean_accuracy(self, name: str) -> float:
        data = self.dataset(name)
        return float((self.clean_predictions(name) == data.test.labels).double().mean())

    def set_predictions(self, name: str, set_record: SetRecord,
                        load: Callable[[], store.AdvSet]) -> dict[str, torch.Tensor]:
        """labels, source_pred, clean_pred, adv_pred (N,) of model ``name`` on a set (and the set's targets, for a
        targeted set); from the cache when there."""
        path = cache_path(self.workspace, self.record(name).weights_sha256, set_record.sha256, self.precision)
        cached = self._read(path)
        needed = {"labels", "source_pred", "clean_pred", "adv_pred"} | ({"targets"} if set_record.target else set())
        if cached is not None and needed <= set(cached):
            return {**cached, "cached": True}
        advset = load()
        clean = self._clean_from_test(name, advset)
        if clean is None:
            clean = self.predict(name, advset.clean)
        preds = {"labels": advset.labels.long(), "source_pred": advset.source_pred.long(), "clean_pred": clean,
                 "adv_pred": self.predict(name, advset.adv)}
        if set_record.target:
            preds["targets"] = advset.extra["targets"].long()
        self._write(path, preds, {"model": name, "set": set_record.name})
        return {**preds, "cached": False}

    def _clean_from_test(self, name: str, advset: store.AdvSet) -> torch.Tensor | None:
        """The set's clean predictions taken from the test-split predictions, when its clean images are test images.

        Only for test splits held in memory: checking a streamed split would decode more than predicting the
        set's own clean images costs.
        """
        data = self.dataset(name)
        if not data.test.in_memory:
            return None
        key = (advset.record.sha256, data.fingerprint)
        if key not in self.subset:
            idx = advset.indices.long()
            self.subset[key] = bool(len(idx) and idx.min() >= 0 and idx.max() < len(data.test)
                                    and tuple(advset.clean.shape[1:]) == data.test.shape
                                    and torch.equal(data.test.floats(idx), advset.clean))
        return self.clean_predictions(name)[advset.indices.long()] if self.subset[key] else None

    def _read(self, path: Path, field: str | None = None) -> Any:
        if not self.use_cache or not path.exists():
            return None
        try:
            tensors = store.read_tensors(path)
        except RobenchError as e:
            log.warning("ignoring a damaged cache file: %s", e)
            return None
        return tensors.get(field) if field else tensors

    def _write(self, path: Path, tensors: dict[str, torch.Tensor], info: dict[str, str]) -> None:
        if self.use_cache:
            store.write_tensors(path, tensors, metadata=info)


# ---------------------------------------------------------------- the matrix


@checked
@takes_context
def matrix(
    workspace: str | os.PathLike | None = None,
    models: Patterns = "*",
    sets: Patterns = "*",
    device: str | None = None,
    data_dir: str | os.PathLike | None = None,
    callback: Callback | None = None,
    *,
    batch_size: int = 512,
    use_cache: bool = True,
    shard: tuple[int, int] | None = None,
    precision: str = "fp32",
    workers: int | None = None,
    targets: Patterns | None = None,
    ci: str = "wilson",
    ci_level: float = CI_LEVEL,
) -> pd.DataFrame:
    """Score every target model on every adversarial set: one tidy row per (target, set).

    ``models`` (the targets; ``targets=`` is its old name) and ``sets`` are glob patterns (a comma-separated
    string or a list). Columns:
    see ``COLUMNS``; rates are fractions in [0, 1] (NaN when n == 0). Cells that cannot be scored (another
    dataset or input shape) are left out and listed in ``df.attrs["skipped"]`` as dicts (target, set, reason).
    ``callback(kind, payload)`` receives 'start', 'cell' and 'skip' events. ``shard=(i, n)`` scores only
    every n-th target (sorted by name) from the i-th, so n machines can split a matrix; see :func:`merge`.
    ``precision`` (fp32, bf16, fp16) is the autocast dtype of the targets' predictions, recorded in each row.
    ``workers``: DataLoader workers that decode a streamed folder's test images (default: from the core count).
    ``ci`` (wilson, bootstrap, none) and ``ci_level`` set the rates' intervals (see :mod:`robench.stats`).
    """
    check_precision(precision)
    check_ci(ci, ci_level)
    if targets is not None:
        warnings.warn("matrix(targets=...) is now matrix(models=...)", DeprecationWarning, stacklevel=2)
        models = targets
    model_names = shard_of(select(store.list_model_names(workspace), models, "model", workspace), shard)
    set_names = select(store.list_set_names(workspace), sets, "set", workspace)
    scorer = Scorer(workspace, device, data_dir, batch_size, use_cache, precision=precision, workers=workers)
    set_records = [store.read_set(s, workspace) for s in set_names]
    for name in model_names:  # find every target's data first: a missing dataset fails before any progress
        if any(mismatch(scorer.record(name), srec) is None for srec in set_records):
            scorer.dataset(name)
    notify = emitter(callback)
    notify("start", {"label": "matrix", "targets": model_names, "sets": set_names, "done": 0,
                     "total": len(model_names) * len(set_names)})
    rows, skipped, done = [], [], 0
    for srec in set_records:
        loaded: list[store.AdvSet] = []

        def load(path: Path | None = srec.path, loaded: list = loaded) -> store.AdvSet:
            if not loaded:
                loaded.append(store.load_set(path))
            return loaded[0]

        for name in model_names:
            done += 1
            reason = mismatch(scorer.record(name), srec)
            if reason:
                log.info("skipped %s on %s: %s", name, srec.name, reason)
                skipped.append({"target": name, "set": srec.name, "reason": reason})
                notify("skip", {**skipped[-1], "done": done, "info": f"skipped {name} on {srec.name}"})
                continue
            preds = scorer.set_predictions(name, srec, load)
            rows.append(_row(scorer, name, srec, preds))
            notify("cell", {"target": name, "set": srec.name, "cached": preds["cached"], "done": done,
                            "info": f"{name} on {srec.name}" + (" (cached)" if preds["cached"] else "")})
    df = pd.DataFrame(rows, columns=COLUMNS)
    df = add_rate_ci(add_rate_ci(df, "defense_rate", "", ci, ci_level), "agreement", "agreement_", ci, ci_level)
    df = add_rate_ci(df, "target_hit_rate", "target_hit_rate_", ci, ci_level)
    df = add_rate_ci(df, "target_clean_accuracy", "clean_", ci, ci_level, n="target_n_test")
    df["ci_method"], df["ci_level"] = ci, ci_level if ci != "none" else math.nan
    df.attrs["skipped"] = skipped
    return df


def _row(scorer: Scorer, name: str, srec: SetRecord, preds: dict[str, torch.Tensor]) -> dict:
    target = scorer.record(name)
    params = srec.params
    return {
        "target": name, "set": srec.name, "source": srec.source_label, "method": srec.method,
        "attack": attack_label(srec.method, params), "params": json.dumps(params.to_json(), sort_keys=True),
        "eps": math.nan if params.eps is None else params.eps, "relation": relation(target, srec.sources),
        "n_set": len(preds["labels"]),
        **cell_scores(preds["labels"], preds["source_pred"], preds["clean_pred"], preds["adv_pred"],
                      preds.get("targets")),
        "target_clean_accuracy": scorer.clean_accuracy(name), "target_arch": target.arch,
        "target_keep": target.config.keep, "dataset": target.dataset.label,
        "target_sha256": target.weights_sha256, "set_sha256": srec.sha256, "precision": scorer.precision,
        "target_config": configuration(target.config, target.recipe),
        "source_config": json.dumps([json.loads(configuration(s.config)) for s in srec.sources], sort_keys=True),
        "target_n_test": len(scorer.dataset(name).test),
    }
