"""The suite file's schema: sections, keys and their types, checked before anything runs.

The keys a section takes come from the signature of the function it feeds (``robench.train``,
``robench.attack`` plus every attack method's parameters, ``robench.matrix`` and each score function), so an
unknown key or a value of the wrong type is a one-line error naming the file, the section and the key.
"""

from __future__ import annotations

import functools
import itertools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from robench import checks, store
from robench.errors import RobenchError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# Keys whose value is a list by nature, so a list there is not a grid axis.
_LIST_KEYS = {"milestones", "strides", "ensemble", "sigmas", "ks"}
# score kind -> (function in robench.scoring, its figure in robench.reports.plots or None, the attack method whose
# parameters its **keywords take or None)
SCORES = {"boundary": ("boundary_scores", None, None), "noise": ("noise_curve", "noise_plot", None),
          "shuffle": ("shuffle_curve", "shuffle_plot", None), "tradeoff": ("tradeoff", "tradeoff_plot", None),
          "autoattack": ("autoattack_scores", None, "autoattack"), "folder": ("folder_scores", "folder_plot", None)}
SCORE_KINDS = tuple(SCORES)


@dataclass
class Suite:
    """A parsed suite file."""

    name: str
    workspace: Path
    dataset: str
    data_dir: str | None
    train_defaults: dict[str, Any]
    models: list[dict[str, Any]]
    attack_defaults: dict[str, Any]
    attacks: list[dict[str, Any]]
    matrix: dict[str, Any] | None
    scores: list[dict[str, Any]]
    imports: list[dict[str, Any]] = field(default_factory=list)
    compares: list[dict[str, Any]] = field(default_factory=list)
    description: str = ""
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    executor: dict[str, Any] = field(default_factory=dict)  # [executor]: where steps run (CLI options win)
    report: dict[str, Any] | None = None  # [report]: the HTML page written at the end of a run (out, examples ...)



# ---------------------------------------------------------------- the schema

SHIPPED = Path(__file__).resolve().parent / "shipped"  # the suites that come with robench (package data)
REPORT_KEYS = {"out": str, "examples": int, "seed": int, "dpi": int}  # [report]: robench.reports.html options

# what the runner passes itself (never a suite key); a [[models]] entry gives its recipe as keys (epochs, lr, ...),
# not as a robench.Recipe
_RUNNER = {"workspace", "data_dir", "device", "callback", "resume", "overwrite", "shard", "context", "recipe"}
OUTPUT_KEYS = {"out": str, "plot": str, "dpi": int}  # a matrix or a score writes its result and its figure
# [executor]: the `robench run` options of the same names (robench.suites.ray)
EXECUTOR = {"name": Literal["sequential", "ray"], "address": str, "num_cpus": int, "num_gpus": float | int,
            "cpus_per_step": float | int, "matrix_shards": int,
            **{f"gpus_per_{k}": float | int for k in ("train", "import", "attack", "matrix", "score")}}
COMPARE_KEYS = {"target_a": "a", "target_b": "b", "set_name": "set"}  # robench.compare's arguments in a suite


@dataclass(frozen=True)
class Section:
    """The keys one suite section takes (name -> type), and how the section is written.

    ``many``: an array of tables (``[[models]]``), else one table (``[train]``); ``grid``: a list value expands
    into a grid of entries, except for keys whose type is a list by nature; ``required``: keys every entry needs
    (``arch`` is checked at plan time, as ``[train]`` may give it).
    """

    fields: dict[str, Any]
    many: bool = False
    grid: bool = False
    required: tuple[str, ...] = ()


def _choices() -> dict[str, Any]:
    """Keys whose values come from a registry, as Literal types."""
    from typing import Literal

    from robench.attacks import list_backends, list_methods
    from robench.attacks.registry import NORMS
    from robench.datasets import AUGMENTS, list_datasets
    from robench.models import MASK_MODES, PLACEMENTS, REGULARIZERS, list_models
    from robench.reports.tables import CI_STYLES
    from robench.scoring.probes import BOUNDARY_MODES
    from robench.stats import CI_METHODS
    from robench.training import PRESETS

    names = {"arch": list_models(), "dataset": list_datasets(), "preset": PRESETS, "placement": PLACEMENTS,
             "mask": MASK_MODES, "regularizer": REGULARIZERS, "augment": AUGMENTS, "method": list_methods(),
             "backend": list_backends(), "mode": BOUNDARY_MODES, "norm": NORMS,
             "value": ("defense_rate", "agreement", "target_hit_rate"), "ci": CI_METHODS,
             "ci_style": CI_STYLES}
    return {k: Literal[tuple(v)] for k, v in names.items()}


def signature_fields(fn: Callable, rename: dict[str, str] | None = None) -> dict[str, Any]:
    """The keyword arguments of ``fn`` a suite may set (name -> type), from its signature and type hints."""
    import inspect
    import typing

    hints, choices, rename = typing.get_type_hints(fn), _choices(), rename or {}
    fields = {}
    for name, p in inspect.signature(fn).parameters.items():
        if name in _RUNNER or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        kind = choices.get(name, hints.get(name, Any))
        if name in choices and p.default is None:
            kind = kind | None
        fields[rename.get(name, name)] = kind
    return fields


def _method_fields(methods: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The parameters of attack ``methods`` (default: every registered one), typed by their defaults: whole
    numbers, true/false, text for text, a number or a fraction ('16/255') for the rest."""
    from robench.attacks import list_methods, method_spec

    fields: dict[str, Any] = {}
    for method in methods or list_methods():
        for key, default in method_spec(method).defaults.items():
            kind = (bool if isinstance(default, bool) else int if isinstance(default, int)
                    else str if isinstance(default, str) else float | str)
            fields[key] = fields.get(key, kind) if fields.get(key, kind) == kind else float | str
    return fields


def _arch_fields() -> dict[str, Any]:
    """The options of a robench architecture (``create_model``'s and the defect spec's), for imported weights."""
    import dataclasses
    import typing

    from robench.models import DefectSpec, create_model

    fields = {k: v for k, v in signature_fields(create_model).items()
              if k not in ("name", "num_classes", "in_channels", "input_size")}
    hints, choices = typing.get_type_hints(DefectSpec), _choices()
    fields.update({f.name: choices.get(f.name, hints[f.name]) for f in dataclasses.fields(DefectSpec)})
    return fields


@functools.cache
def sections() -> dict[str, Section]:
    """The schema: every section a suite file may have. New sections and score kinds go here."""
    from robench import scoring
    from robench.api import import_model, train
    from robench.attacks import attack

    model = signature_fields(train)
    imports = {**signature_fields(import_model, rename={"spec": "from"}), **_arch_fields(),
               "arch": str | None}  # a robench architecture, or torchvision:NAME / timm:NAME
    sets = {**_method_fields(), **signature_fields(attack, rename={"sources": "source"}),
            "ensemble": list[str], "norm": _choices()["norm"]}
    study = {"name": str, "description": str, "dataset": _choices()["dataset"], "workspace": str, "data_dir": str}
    matrix = {**signature_fields(scoring.matrix), **OUTPUT_KEYS, "min_n": int, "show_n": bool,
              "value": _choices()["value"], "by_config": bool, "ci_style": _choices()["ci_style"]}
    compare = {**signature_fields(scoring.compare, rename=COMPARE_KEYS), "out": str}
    return {
        "study": Section(study), "train": Section(model, grid=True), "models": Section(model, True, True),
        "imports": Section(imports, many=True, required=("name", "from")),
        "attack": Section(sets, grid=True), "attacks": Section(sets, True, True), "matrix": Section(matrix),
        "scores": Section({"kind": str}, many=True, required=("kind",)), "executor": Section(EXECUTOR),
        "compare": Section(compare, many=True, required=("a", "b", "set")), "report": Section(REPORT_KEYS),
    }


@functools.cache
def score_fields(kind: str) -> dict[str, Any]:
    """The keys a ``[[scores]]`` entry of ``kind`` takes: its function's arguments, out, plot if it draws, and
    data_dir (the study's ``--data-dir`` for this entry only; kind "folder": the test-only folder)."""
    from robench import scoring

    function, figure, method = SCORES[kind]
    keys = {"kind": str, **signature_fields(getattr(scoring, function), rename={"set_name": "set"}), "out": str,
            "data_dir": str}
    if method:
        keys.update({k: v for k, v in _method_fields((method,)).items() if k not in keys})
    return {**keys, **({"plot": str, "dpi": int} if figure else {})}


@functools.cache
def score_required(kind: str) -> tuple[str, ...]:
    """The keys a ``[[scores]]`` entry of ``kind`` must give: ``kind`` and its function's arguments without a
    default (``tradeoff``: ``set``), so a missing one fails at load time, not after the training."""
    import inspect

    from robench import scoring

    rename = {"set_name": "set"}
    params = inspect.signature(getattr(scoring, SCORES[kind][0])).parameters.items()
    return ("kind", *(rename.get(n, n) for n, p in params if p.default is p.empty and n not in _RUNNER
                      and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)))


def _where(section: str, index: int | None) -> str:
    return f"[[{section}]] #{index + 1}" if index is not None else f"[{section}]"


def _is_list_type(kind: Any) -> bool:
    """True when a type takes a list by nature (list[int], Sequence[str], ...), so a list is not a grid axis."""
    from typing import get_args, get_origin

    from pydantic import TypeAdapter, ValidationError

    if kind is Any:
        return False
    try:
        TypeAdapter(kind).validate_python([])
        return get_origin(kind) is not None or bool(get_args(kind))
    except ValidationError:
        return False


def _check_value(kind: Any, value: Any) -> str | None:
    """Why ``value`` is not a ``kind`` (strictly: no text for numbers, but whole numbers for floats), else None."""
    from pydantic import ConfigDict, TypeAdapter, ValidationError

    try:
        TypeAdapter(kind, config=ConfigDict(strict=True)).validate_python(value)
    except ValidationError as e:
        return " or ".join(dict.fromkeys(err["msg"].rstrip(".") for err in e.errors()))
    except Exception:  # a type pydantic cannot check: accept
        return None
    return None


def _domain_problem(key: str, kind: Any, value: Any) -> str | None:
    """Why ``value`` is outside the domain of keyword ``key`` (robench.checks: n >= 1, keep in (0, 1] ...), where
    the key means that keyword here (an ensemble of source names is not the count of ensemble members)."""
    domain = checks.DOMAINS.get(key)
    if domain is None or (domain.each != _is_list_type(kind) and domain.kind in ("int", "float")):
        return None
    return checks.problem(key, value)


def _check_entry(source: str, where: str, entry: Any, fields: dict[str, Any], grid_ok: bool,
                 required: tuple[str, ...] = ()) -> None:
    import difflib

    if not isinstance(entry, dict):
        raise RobenchError(f"{source}: {where} must be a table of keys, got {type(entry).__name__}")
    for key, value in entry.items():
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise RobenchError(f"{source}: {where}: unknown key '{key}'; {hint}it takes {', '.join(sorted(fields))}")
        kind = fields[key]
        values = value if grid_ok and isinstance(value, list) and not _is_list_type(kind) else [value]
        for v in values:
            problem = _check_value(kind, v) or _domain_problem(key, kind, v)
            if problem:
                raise RobenchError(f"{source}: {where}: {key} = {v!r}: {problem}")
    missing = [k for k in required if k not in entry]
    if missing:
        raise RobenchError(f"{source}: {where} needs {', '.join(missing)}")


def check(raw: dict[str, Any], source: str = "<dict>") -> None:
    """Check a parsed suite against :func:`sections`: sections, keys and value types; a RobenchError names the
    file, the section and the key of the first problem. Nothing is run, trained or written."""
    schema = sections()
    unknown = sorted(set(raw) - set(schema))
    if unknown:
        raise RobenchError(f"{source}: unknown section(s) {', '.join(unknown)}; use {', '.join(sorted(schema))}")
    for name, section in schema.items():
        if name not in raw:
            continue
        entries = raw[name]
        if section.many != isinstance(entries, list):
            form = f"[[{name}]] (one per entry)" if section.many else f"[{name}] (one table)"
            raise RobenchError(f"{source}: write {name} as {form}")
        for i, entry in enumerate(entries if section.many else [entries]):
            where = _where(name, i if section.many else None)
            fields = section.fields
            if name == "scores":
                kind = entry.get("kind") if isinstance(entry, dict) else None
                if kind not in SCORES:
                    raise RobenchError(f"{source}: {where}: kind = {kind!r} is not one of {', '.join(SCORES)}")
                fields = score_fields(kind)
            required = score_required(kind) if name == "scores" else section.required
            _check_entry(source, where, entry, fields, section.grid, required)


def grid(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """Expand list values (other than list-natured keys) into the cartesian product of entries."""
    axes = {k: v for k, v in entry.items() if isinstance(v, list) and k not in _LIST_KEYS}
    fixed = {k: v for k, v in entry.items() if k not in axes}
    return [{**fixed, **dict(zip(axes, combo, strict=True))} for combo in itertools.product(*axes.values())]


def shipped_suites() -> dict[str, Path]:
    """The suites that come with robench, by name (``table4-cpu`` ...): ``robench run NAME`` runs one."""
    return {p.stem: p for p in sorted(SHIPPED.glob("*.toml"))}


def suite_path(path: str | os.PathLike) -> Path:
    """The file of a suite: ``path`` when it exists, else the shipped suite of that name (``table4-cpu``, or a
    missing ``.../table4-cpu.toml`` such as ``benchmarks/suites/table4-cpu.toml`` outside a clone)."""
    path = Path(path)
    shipped = shipped_suites()
    if path.exists() or path.stem not in shipped or path.suffix not in ("", ".toml"):
        return path
    return shipped[path.stem]


def load_suite(path: str | os.PathLike, workspace: str | os.PathLike | None = None,
               data_dir: str | os.PathLike | None = None) -> Suite:
    """Parse a suite file (or a shipped suite by name, see :func:`suite_path`); ``workspace`` overrides the
    file's ``[study] workspace``."""
    path = suite_path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise RobenchError(f"suite file {path} not found; pass the path of a .toml suite or the name of a shipped "
                           f"one ({', '.join(shipped_suites())})") from None
    except tomllib.TOMLDecodeError as err:
        raise RobenchError(f"suite file {path} is not valid TOML ({err})") from None
    return suite_from_dict(raw, workspace=workspace, data_dir=data_dir, source=str(path))


def suite_from_dict(raw: dict[str, Any], workspace: str | os.PathLike | None = None,
                    data_dir: str | os.PathLike | None = None, source: str = "<dict>") -> Suite:
    """A suite from parsed TOML, checked completely against the schema (see :func:`check`)."""
    check(raw, source)
    study = raw.get("study", {})
    scores = raw.get("scores", [])
    for s in scores:
        if s["kind"] == "folder" and not s.get("data_dir"):
            raise RobenchError(f"{source}: a [[scores]] entry of kind \"folder\" needs data_dir, the test-only "
                               f"folder to score")
    return Suite(
        name=study.get("name", Path(source).stem), description=study.get("description", ""),
        workspace=store.workspace_dir(workspace or study.get("workspace")),
        dataset=study.get("dataset", "cifar10"), data_dir=str(data_dir or study.get("data_dir") or "") or None,
        train_defaults=raw.get("train", {}), models=raw.get("models", []),
        attack_defaults=raw.get("attack", {}), attacks=raw.get("attacks", []),
        matrix=raw.get("matrix"), scores=scores, source=source, imports=raw.get("imports", []),
        compares=raw.get("compare", []),
        executor=raw.get("executor", {}), report=raw.get("report"),
    )


