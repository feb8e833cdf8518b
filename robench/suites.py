"""Experiment suites: a whole study (models x attacks x scores) described in a TOML file.

A suite is planned into steps (train, attack, matrix, score). Running it skips every finished
step, so an interrupted study resumes where it stopped; an interrupted training run resumes
from its checkpoint. Format (see ``benchmarks/suites/`` for complete examples)::

    [study]
    name = "table4-cpu"
    dataset = "digits"            # default dataset of every model

    [train]                       # defaults for every [[models]] entry
    preset = "quick"
    width = 16

    [[models]]                    # list values expand into a grid (cartesian product)
    arch = ["resnet18", "vgg19"]
    keep = [1.0, 0.5, 0.3]

    [[imports]]                   # models robench did not train (`robench import`): name, from, its options
    name = "tv-resnet18"
    from = "torchvision:resnet18"

    [attack]                      # defaults for every [[attacks]] entry
    n = 500

    [[attacks]]
    source = ["resnet18-seed1"]   # one set per source; `ensemble = [...]` makes one fused source
    method = "pgd"
    eps = "16/255"

    [matrix]
    out = "matrix.csv"            # relative paths land in WORKSPACE/results/ (.csv .json .md .tex)
    plot = "matrix.pdf"           # the heatmap (.png .svg .pdf .eps)

    [[scores]]
    kind = "tradeoff"             # boundary | noise | shuffle | tradeoff | autoattack | folder
    set = "densenet121-seed1-pgd-eps16"
    models = "resnet18*"

    [[scores]]
    kind = "folder"               # accuracy on a test-only folder, classes matched by name
    data_dir = "/data/stylized"   # needed by kind "folder"

Every key is checked when the file is loaded, before anything runs (:func:`check`): the keys a section takes
come from the signature of the function it feeds (``robench.train``, ``robench.attack`` plus every attack
method's parameters, ``robench.matrix`` and each score function), so an unknown key or a value of the wrong
type is a one-line error naming the file, the section and the key.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from robench import store
from robench.errors import RobenchError
from robench.events import Callback
from robench.files import atomic_path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

log = logging.getLogger(__name__)

# Keys whose value is a list by nature, so a list there is not a grid axis.
_LIST_KEYS = {"milestones", "strides", "ensemble", "sigmas", "ks"}
# score kind -> (function in robench.scoring, its figure in robench.reports.plots or None, the attack method whose
# parameters its **keywords take or None)
SCORES = {"boundary": ("boundary_scores", None, None), "noise": ("noise_curve", "noise_plot", None),
          "shuffle": ("shuffle_curve", "shuffle_plot", None), "tradeoff": ("tradeoff", "tradeoff_plot", None),
          "autoattack": ("autoattack_scores", None, "autoattack"), "folder": ("folder_scores", "folder_plot", None)}
SCORE_KINDS = tuple(SCORES)


@dataclass
class Step:
    """One unit of work: train a model, make a set, compute the matrix or a score."""

    kind: str
    name: str
    args: dict[str, Any]
    out: Path | None = None
    done: bool = False
    resume: bool = False
    figure: Path | None = None
    options: dict[str, Any] = field(default_factory=dict)  # how the result is shown: dpi, min_n, show_n, value

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name}"


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
    description: str = ""
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)



# ---------------------------------------------------------------- the schema

# what the runner passes itself (never a suite key)
_RUNNER = {"workspace", "data_dir", "device", "callback", "resume", "overwrite", "shard"}
OUTPUT_KEYS = {"out": str, "plot": str, "dpi": int}  # a matrix or a score writes its result and its figure


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
    from robench.data import AUGMENTS, list_datasets
    from robench.models import MASK_MODES, PLACEMENTS, REGULARIZERS, list_models
    from robench.scoring.probes import BOUNDARY_MODES
    from robench.training import PRESETS

    names = {"arch": list_models(), "dataset": list_datasets(), "preset": PRESETS, "placement": PLACEMENTS,
             "mask": MASK_MODES, "regularizer": REGULARIZERS, "augment": AUGMENTS, "method": list_methods(),
             "backend": list_backends(), "mode": BOUNDARY_MODES, "norm": NORMS,
             "value": ("defense_rate", "agreement", "target_hit_rate")}
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
              "value": _choices()["value"]}
    return {
        "study": Section(study), "train": Section(model, grid=True), "models": Section(model, True, True),
        "imports": Section(imports, many=True, required=("name", "from")),
        "attack": Section(sets, grid=True), "attacks": Section(sets, True, True), "matrix": Section(matrix),
        "scores": Section({"kind": str}, many=True, required=("kind",)),
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
            problem = _check_value(kind, v)
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
            _check_entry(source, where, entry, fields, section.grid, section.required)


def grid(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """Expand list values (other than list-natured keys) into the cartesian product of entries."""
    axes = {k: v for k, v in entry.items() if isinstance(v, list) and k not in _LIST_KEYS}
    fixed = {k: v for k, v in entry.items() if k not in axes}
    return [{**fixed, **dict(zip(axes, combo, strict=True))} for combo in itertools.product(*axes.values())]


def load_suite(path: str | os.PathLike, workspace: str | os.PathLike | None = None,
               data_dir: str | os.PathLike | None = None) -> Suite:
    """Parse a suite file; ``workspace`` overrides the file's ``[study] workspace``."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise RobenchError(f"suite file {path} not found; pass the path of a .toml suite") from None
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
    )


def plan(suite: Suite) -> list[Step]:
    """Every step of the suite, in order, each marked done or not."""
    steps = []
    for i, entry in enumerate(suite.imports):
        with _located(suite, "imports", i):
            steps.append(_import_step(suite, entry))
    for i, entry in enumerate(suite.models):
        with _located(suite, "models", i):
            steps += [_train_step(suite, e) for e in grid({**suite.train_defaults, **entry})]
    for i, entry in enumerate(suite.attacks):
        with _located(suite, "attacks", i):
            steps += [_attack_step(suite, e) for e in _attack_entries({**suite.attack_defaults, **entry})]
    _check_unique(steps)
    inputs = [s for s in steps if s.kind in ("import", "train", "attack")]
    results = ([("matrix", suite.matrix, f"{suite.name}-matrix.csv")] if suite.matrix is not None else [])
    results += [(f"score:{s['kind']}", s, f"{suite.name}-{s['kind']}-{i}.csv") for i, s in enumerate(suite.scores)]
    for kind, entry, default in results:
        out = _out_path(suite, entry.get("out", default))
        figure = _out_path(suite, entry["plot"]) if entry.get("plot") else None
        shown = {"dpi", "min_n", "show_n", "value"}
        args = {k: v for k, v in entry.items() if k not in shown | {"kind", "out", "plot"}}
        done = _fresh(out, suite, inputs) and (figure is None or _fresh(figure, suite, inputs))
        steps.append(Step(kind, out.name, args, out, done, figure=figure,
                          options={k: v for k, v in entry.items() if k in shown}))
    return steps


@contextlib.contextmanager
def _located(suite: Suite, section: str, index: int) -> Iterator[None]:
    """Prefix a RobenchError raised while planning an entry with the file and the entry."""
    try:
        yield
    except RobenchError as err:
        message = str(err).removeprefix(f"{suite.source}: ")
        raise RobenchError(f"{suite.source}: {_where(section, index)}: {message}") from None


def _train_step(suite: Suite, entry: dict[str, Any]) -> Step:
    from robench.api import planned_model_name

    args = {"dataset": suite.dataset, **entry}
    arch = args.pop("arch", None)
    if not arch:
        raise RobenchError("every [[models]] entry needs an arch (or [train] gives one)")
    name = planned_model_name(arch, **args)
    directory = store.model_dir(name, suite.workspace)
    done = (directory / store.MODEL_META).exists() and not (directory / store.CHECKPOINT).exists()
    return Step("train", name, {"arch": arch, **args, "name": name}, done=done,
                resume=(directory / store.CHECKPOINT).exists())


def _import_step(suite: Suite, entry: dict[str, Any]) -> Step:
    args = {"dataset": suite.dataset, **entry}
    if not args.get("name") or not args.get("from"):
        raise RobenchError(f"{suite.source}: every [[imports]] entry needs a name and a from (a SPEC, as in "
                           f"`robench import NAME --from SPEC`)")
    name = store.check_name(args["name"])
    return Step("import", name, args, done=(store.model_dir(name, suite.workspace) / store.MODEL_META).exists())


def _attack_entries(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per set: ``source`` (a list makes one set each) or ``ensemble`` (a list fused into one source,
    which wins over a ``source`` from [attack])."""
    entry = dict(entry)
    if "ensemble" in entry:
        members = list(entry.pop("ensemble"))
        entry.pop("source", None)
        return [{**e, "sources": members} for e in grid(entry)]
    if "source" not in entry:
        raise RobenchError("every [[attacks]] entry needs a source (a list makes one set each) or an ensemble")
    entries = []
    for e in grid(entry):
        sources = e.pop("source")
        entries.append({**e, "sources": sources})
    return entries


def _attack_step(suite: Suite, entry: dict[str, Any]) -> Step:
    from robench.attacks import default_set_name, method_spec
    from robench.attacks.registry import resolve_backend, resolve_params

    args = dict(entry)
    sources = args["sources"] if isinstance(args["sources"], list) else [args["sources"]]
    method = args.get("method", "pgd")
    spec = method_spec(method)
    backend = resolve_backend(spec, args.get("backend"))
    given = {k: v for k, v in args.items() if k not in ("sources", "method", "backend", "n", "seed", "name",
                                                         "batch_size", "target", "precision", "compile")}
    params = resolve_params(spec, **given)
    target = str(args["target"]).strip().lower() if args.get("target") is not None else None
    name = args.get("name") or default_set_name(sources, spec, params, backend.name, args.get("seed", 0),
                                                 args.get("n", 5000), target, args.get("precision", "fp32"))
    done = (store.set_dir(name, suite.workspace) / store.SET_META).exists()
    return Step("attack", name, {**args, "sources": sources, "method": method, "name": name}, done=done)


def _check_unique(steps: list[Step]) -> None:
    seen: set[str] = set()
    for s in steps:
        if s.label in seen:
            raise RobenchError(f"the suite makes {s.label} twice; give one of them another name or seed")
        seen.add(s.label)


def _out_path(suite: Suite, out: str) -> Path:
    path = Path(out)
    return path if path.is_absolute() else suite.workspace / "results" / path


def _fresh(out: Path, suite: Suite, inputs: list[Step]) -> bool:
    """An output is up to date when it exists, every input step is done, and it is newer than them."""
    if not out.exists() or not all(s.done for s in inputs):
        return False
    metas = [store.model_dir(s.name, suite.workspace) / store.MODEL_META for s in inputs
             if s.kind in ("import", "train")]
    metas += [store.set_dir(s.name, suite.workspace) / store.SET_META for s in inputs if s.kind == "attack"]
    newest = max((p.stat().st_mtime for p in metas if p.exists()), default=0.0)
    return out.stat().st_mtime >= newest




def run_step(suite: Suite, step: Step, callback: Callback | None = None, device: str | None = None) -> Any:
    """Run one step (whether or not it is done) and return its result (metadata or DataFrame)."""
    from robench import scoring
    from robench.api import import_model, train
    from robench.attacks import attack
    from robench.scoring import matrix

    common = {"workspace": suite.workspace, "data_dir": suite.data_dir, "device": device, "callback": callback}
    if step.kind == "train":
        args = dict(step.args)
        return train(args.pop("arch"), **args, resume=step.resume, **common)
    if step.kind == "import":
        args = dict(step.args)
        return import_model(args.pop("name"), args.pop("from"), **args, workspace=suite.workspace,
                            data_dir=suite.data_dir, device=device)
    if step.kind == "attack":
        args = dict(step.args)
        return attack(args.pop("sources"), args.pop("method"), **args, **common)
    kind = step.kind.removeprefix("score:")
    args = dict(step.args)
    if "set" in args:
        args["set_name"] = args.pop("set")
    scorer = matrix if step.kind == "matrix" else getattr(scoring, SCORES[kind][0])
    df: pd.DataFrame = scorer(**{**common, **args})  # an entry's data_dir overrides the study's
    write_result(df, step.out, matrix=step.kind == "matrix", **step.options)
    if step.figure is not None:
        _draw(df, step.figure, kind, step.options)
    return df


def write_result(df: pd.DataFrame, path: Path, *, matrix: bool = False, value: str = "defense_rate",
                 min_n: int | None = None, show_n: bool = False, dpi: int | None = None) -> None:
    """Write a result atomically in the format of the path's suffix: csv or json (tidy rows), markdown or latex
    (a matrix in the papers' layout; a score as its table)."""
    from robench.reports import tables

    fmt = tables.format_for(path, None)
    if matrix:
        text = tables.render(df, fmt, value, min_n=tables.MIN_N if min_n is None else min_n, show_n=show_n)
    else:
        text = tables.tidy_text(df, fmt) if fmt in ("csv", "json") else tables.display_text(df, fmt, path.stem)
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _draw(df: pd.DataFrame, path: Path, kind: str, options: dict[str, Any]) -> Path:
    """A result's figure: the matrix heatmap, or the score's plot."""
    from robench.reports import plots

    dpi = options.get("dpi", plots.DPI)
    if kind == "matrix":
        view = {k: options[k] for k in ("min_n", "show_n") if k in options}
        return plots.heatmap(df, path, options.get("value", "defense_rate"), dpi=dpi, **view)
    return getattr(plots, SCORES[kind][1])(df, path, dpi=dpi)


def run(suite: Suite, callback: Callback | None = None, device: str | None = None,
        on_step: Callable[[Step, str], None] | None = None) -> dict[str, Any]:
    """Run every unfinished step in order; returns {step label: result} for the steps that ran."""
    results: dict[str, Any] = {}
    for step in plan(suite):
        if step.done:
            log.info("skipping finished step %s", step.label)
            if on_step:
                on_step(step, "skipped")
            continue
        if on_step:
            on_step(step, "running")
        results[step.label] = run_step(suite, step, callback, device)
        if on_step:
            on_step(step, "done")
    return results


def plan_frame(steps: list[Step]) -> pd.DataFrame:
    """The plan as a table: step number, kind, name, status, and the step's main settings."""
    rows = []
    for i, s in enumerate(steps, 1):
        shown = {k: v for k, v in s.args.items() if k not in ("name", "arch", "from", "sources", "callback")}
        what = s.args.get("arch") or s.args.get("from") or ", ".join(s.args.get("sources", [])) or ""
        status = "done" if s.done else "resume" if s.resume else "todo"
        rows.append({"#": i, "step": s.kind, "name": s.name, "of": what, "status": status,
                     "settings": ", ".join(f"{k}={v}" for k, v in shown.items())})
    return pd.DataFrame(rows, columns=["#", "step", "name", "of", "status", "settings"])


# ---------------------------------------------------------------- the built-in demo

DEMO_SOURCE = "resnet18-seed1"


def demo_suite(workspace: str | os.PathLike | None = None, epochs: int = 10, n: int = 5000) -> Suite:
    """The offline demo study on digits: a standard source; standard, bottom-0.1 and top-0.1 targets
    (ResNet-18, width 16); FGSM(8/255) and PGD(1/255, 20, 16/255) sets from the source; the matrix."""
    raw = {
        "study": {"name": "demo", "dataset": "digits"},
        "train": {"preset": "quick", "width": 16, "epochs": epochs},
        "models": [
            {"arch": "resnet18", "seed": 1},  # the source: another initialisation than the targets
            {"arch": "resnet18", "keep": 1.0},
            {"arch": "resnet18", "keep": 0.1, "placement": ["bottom", "top"]},
        ],
        "attack": {"n": n, "source": DEMO_SOURCE},
        "attacks": [{"method": "fgsm", "eps": "8/255"}, {"method": "pgd", "eps": "16/255", "step": "1/255",
                                                          "steps": 20}],
        "matrix": {"out": "demo-matrix.csv"},
    }
    return suite_from_dict(raw, workspace=workspace or "robench-demo", source="robench demo")


def demo_plots(suite: Suite, df: pd.DataFrame, fmt: str = "png") -> list[Path]:
    """The demo's figures: the matrix heatmap and clean-vs-adversarial example grids of each set."""
    from robench.reports import plots
    from robench.scoring import set_examples

    results = suite.workspace / "results"
    paths = [plots.heatmap(df, results / f"demo-matrix.{fmt}")]
    for step in plan(suite):
        if step.kind == "attack":
            paths.append(set_examples(step.name, results / f"{step.name}-examples.{fmt}", workspace=suite.workspace))
    return paths
