"""The workspace's folders and records, read without torch: names, paths, records and their listings.

``robench models``, ``robench sets`` and a mistyped name answer from the JSON records alone (no tensor library
is imported). :mod:`robench.store` re-exports these and adds the tensors (weights and sets).
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from robench.errors import RobenchError, unknown_name
from robench.records import MODEL_JSON, SET_JSON, ModelRecord, SetRecord, read_model_record, read_set_record

if TYPE_CHECKING:
    import pandas as pd

MODEL_META, SET_META = MODEL_JSON, SET_JSON
Patterns = str | Sequence[str]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


def workspace_dir(path: str | os.PathLike | None = None) -> Path:
    """The workspace: the argument, else $ROBENCH_WORKSPACE, else ./robench-workspace."""
    return Path(path or os.environ.get("ROBENCH_WORKSPACE") or "robench-workspace")


def check_name(name: str) -> str:
    """Names become folder names: letters, digits, '.', '_', '+', '-' only."""
    if not _NAME.match(name):
        raise RobenchError(f"invalid name '{name}': use letters, digits, '.', '_', '+' and '-' only")
    return name


# ---------------------------------------------------------------- selection


def split_patterns(patterns: Patterns) -> list[str]:
    """'a*,b' or ['a*', 'b'] -> ['a*', 'b']."""
    items = [patterns] if isinstance(patterns, str) else list(patterns)
    return [p.strip() for item in items for p in str(item).split(",") if p.strip()] or ["*"]


def select(names: list[str], patterns: Patterns, kind: str, workspace: str | os.PathLike | None = None) -> list[str]:
    """The names matching any glob pattern, in ``names``' order; a pattern matching nothing is an error."""
    ws = workspace_dir(workspace)
    if not names:
        hint = "train one with `robench train`" if kind == "model" else "make one with `robench attack`"
        raise RobenchError(f"no {kind}s in workspace {ws}; {hint} or pass --workspace")
    chosen: set[str] = set()
    for pattern in split_patterns(patterns):
        hits = fnmatch.filter(names, pattern)
        if not hits:
            raise RobenchError(f"no {kind} matches '{pattern}' in {ws}; available: {', '.join(names)}")
        chosen.update(hits)
    return [n for n in names if n in chosen]


def check_selection(workspace: str | os.PathLike | None = None, models: Patterns | None = None,
                    sets: Patterns | None = None) -> None:
    """Refuse model or set names/patterns that match nothing in the workspace, from the records alone (no torch):
    a command can answer a typo before it loads anything."""
    if models is not None:
        select(list_model_names(workspace), models, "model", workspace)
    if sets is not None:
        select(list_set_names(workspace), sets, "set", workspace)


# ---------------------------------------------------------------- models


def model_dir(name: str, workspace: str | os.PathLike | None = None) -> Path:
    return workspace_dir(workspace) / "models" / check_name(name)


def resolve_model(name_or_path: str | os.PathLike, workspace: str | os.PathLike | None = None) -> Path:
    """A model directory from a workspace name, a model directory or its model.json path."""
    path = Path(name_or_path)
    if path.name == MODEL_META and path.is_file():
        return path.parent
    if (path / MODEL_META).is_file():
        return path
    name = str(name_or_path)
    directory = model_dir(name, workspace)
    if not (directory / MODEL_META).is_file():
        known = list_model_names(workspace)
        if known:
            raise unknown_name(f"model in {workspace_dir(workspace)}", name, known)
        raise RobenchError(
            f"no model '{name}' in workspace {workspace_dir(workspace)} (it holds none); "
            f"train one with `robench train`, import one with `robench import`, or pass --workspace"
        )
    return directory


def read_model(name_or_path: str | os.PathLike, workspace: str | os.PathLike | None = None) -> ModelRecord:
    """The record of a saved model (a workspace name, a model directory or its model.json)."""
    return read_model_record(resolve_model(name_or_path, workspace))


def list_model_names(workspace: str | os.PathLike | None = None) -> list[str]:
    return [p.parent.name for p in _metas(workspace_dir(workspace) / "models", MODEL_META)]


def _metas(root: Path, meta_file: str) -> list[Path]:
    """The metadata files of the finished items under ``root``, sorted; never those of hidden staging folders
    (another process's set or model being written)."""
    return sorted(p for p in root.glob(f"*/{meta_file}") if not p.parent.name.startswith(".")) if root.is_dir() \
        else []


def _records(kind: str, meta_file: str, reader: Callable[[Path], object], workspace) -> list:
    return [reader(p.parent) for p in _metas(workspace_dir(workspace) / kind, meta_file)]


def list_model_records(workspace: str | os.PathLike | None = None) -> list[ModelRecord]:
    """The record of every model in the workspace, sorted by name."""
    return _records("models", MODEL_META, read_model_record, workspace)


def models_frame(workspace: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per saved model: name, arch, keep, placement, dataset, clean accuracy, ..."""
    import pandas as pd

    rows = []
    for rec in list_model_records(workspace):
        cfg, defect, recipe = rec.config, rec.config.defect, rec.recipe
        rows.append({
            "name": rec.name, "arch": rec.arch, "width": cfg.width, "keep": cfg.keep, "placement": cfg.placement,
            "keep_top": defect.keep_top if defect else None, "mask": defect.mask if defect else None,
            "ensemble": cfg.ensemble if cfg.is_robench else None, "dataset": rec.dataset.label,
            "origin": rec.origin.spec or rec.origin.kind, "epochs": rec.epochs,
            "augment": recipe.augment if recipe else None,
            "milestones": ",".join(map(str, recipe.milestones)) or None if recipe else None,
            "clean_accuracy": rec.clean_accuracy,
            "wall_time_s": rec.wall_time_s, "path": str(rec.path),
        })
    return pd.DataFrame(rows, columns=["name", "arch", "width", "keep", "placement", "keep_top", "mask", "ensemble",
                                       "dataset", "origin", "epochs", "augment", "milestones", "clean_accuracy",
                                       "wall_time_s", "path"])


# ---------------------------------------------------------------- adversarial sets


def set_dir(name: str, workspace: str | os.PathLike | None = None) -> Path:
    return workspace_dir(workspace) / "sets" / check_name(name)


def resolve_set(name_or_path: str | os.PathLike, workspace: str | os.PathLike | None = None) -> Path:
    path = Path(name_or_path)
    if (path / SET_META).is_file():
        return path
    if path.name == SET_META and path.is_file():
        return path.parent
    directory = set_dir(str(name_or_path), workspace)
    if not (directory / SET_META).is_file():
        known = list_set_names(workspace)
        if known:
            raise unknown_name(f"set in {workspace_dir(workspace)}", str(name_or_path), known)
        raise RobenchError(f"no set '{name_or_path}' in workspace {workspace_dir(workspace)} (it holds none); "
                           f"make one with `robench attack` or pass --workspace")
    return directory


def read_set(name_or_path: str | os.PathLike, workspace: str | os.PathLike | None = None) -> SetRecord:
    """A set's record (set.json) without loading its tensors."""
    return read_set_record(resolve_set(name_or_path, workspace))


def list_set_names(workspace: str | os.PathLike | None = None) -> list[str]:
    return [p.parent.name for p in _metas(workspace_dir(workspace) / "sets", SET_META)]


def list_set_records(workspace: str | os.PathLike | None = None) -> list[SetRecord]:
    """The record of every adversarial set in the workspace, sorted by name."""
    return _records("sets", SET_META, read_set_record, workspace)


def sets_frame(workspace: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per saved set: name, sources, method, backend, eps, norm, steps, target mode, dataset, counts,
    success rate; ``median_queries`` is the median of the queries the kept examples used (query-based attacks)."""
    import pandas as pd

    rows = []
    for rec in list_set_records(workspace):
        rows.append({
            "name": rec.name, "sources": rec.source_label, "method": rec.method, "backend": rec.backend,
            "eps": rec.params.eps, "norm": rec.params.norm, "steps": rec.params.steps,
            "target": rec.target, "dataset": rec.dataset.label,
            "attempted": rec.attempted, "n": rec.n, "success_rate": rec.success_rate,
            "median_queries": rec.stats.queries.median if rec.stats.queries else None, "wall_time_s": rec.wall_time_s,
            "created": rec.created, "path": str(rec.path),
        })
    return pd.DataFrame(rows, columns=["name", "sources", "method", "backend", "eps", "norm", "steps", "target",
                                       "dataset", "attempted", "n", "success_rate", "median_queries", "wall_time_s",
                                       "created", "path"])
