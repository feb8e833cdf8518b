"""A suite's plan: a graph of steps (import, train, attack, matrix, score), each marked done or not.

Every step names the steps whose outputs it reads (:attr:`Step.deps`): an attack depends on the trainings or
imports of its sources (nothing when the workspace already holds them), the matrix and each score on every
training, import and attack whose output their ``models`` / ``set(s)`` patterns select. The plan is checked
before anything runs: a source no step makes and the workspace does not hold, a data folder that does not exist
or a cycle is a one-line error.
"""

from __future__ import annotations

import contextlib
import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from robench import store
from robench.checks import writable
from robench.errors import RobenchError
from robench.suites.schema import Suite, _where, grid


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
    deps: list[str] = field(default_factory=list)  # labels of the steps whose outputs this one reads

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name}"

def plan(suite: Suite) -> list[Step]:
    """Every step of the suite in an order that runs each after its dependencies, each marked done or not."""
    _check_folders(suite)
    steps = []
    for i, entry in enumerate(suite.imports):
        with _located(suite, "imports", i):
            steps.append(_import_step(suite, entry))
    for i, entry in enumerate(suite.models):
        with _located(suite, "models", i):
            steps += [_train_step(suite, e) for e in grid({**suite.train_defaults, **entry})]
    makers = {s.name: s for s in steps}
    for i, entry in enumerate(suite.attacks):
        with _located(suite, "attacks", i):
            steps += [_attack_step(suite, e, makers) for e in _attack_entries({**suite.attack_defaults, **entry})]
    _check_unique(steps)
    inputs = [s for s in steps if s.kind in ("import", "train", "attack")]
    results = ([("matrix", suite.matrix, f"{suite.name}-matrix.csv")] if suite.matrix is not None else [])
    results += [(f"score:{s['kind']}", s, f"{suite.name}-{s['kind']}-{i}.csv") for i, s in enumerate(suite.scores)]
    results += [("compare", c, f"{suite.name}-compare-{i}.csv") for i, c in enumerate(suite.compares)]
    for i, (kind, entry, default) in enumerate(results):
        if "set" in entry:
            first = (suite.matrix is not None) + (len(suite.scores) if kind == "compare" else 0)
            _check_set(suite, entry["set"], inputs, i - first, "compare" if kind == "compare" else "scores")
        out = _out_path(suite, entry.get("out", default))
        figure = _out_path(suite, entry["plot"]) if entry.get("plot") else None
        shown = {"dpi", "min_n", "show_n", "value", "by_config", "ci_style"}
        args = {k: v for k, v in entry.items() if k not in shown | {"kind", "out", "plot"}}
        read = _reads(kind, args, inputs)
        done = _fresh(out, suite, read) and (figure is None or _fresh(figure, suite, read))
        steps.append(Step(kind, out.name, args, out, done, figure=figure,
                          options={k: v for k, v in entry.items() if k in shown}, deps=[s.label for s in read]))
    return order(steps, suite.source)


def order(steps: list[Step], source: str = "the suite") -> list[Step]:
    """The steps in an order that puts every step after its dependencies (stable: the given order where it can);
    a dependency on no step or a cycle is a RobenchError."""
    by_label = {s.label: s for s in steps}
    for s in steps:
        unknown = [d for d in s.deps if d not in by_label]
        if unknown:
            raise RobenchError(f"{source}: {s.label} depends on {unknown[0]}, which no step makes")
    placed: dict[str, Step] = {}
    while len(placed) < len(steps):
        ready = [s for s in steps if s.label not in placed and all(d in placed for d in s.deps)]
        if not ready:
            raise RobenchError(f"{source}: the steps depend on each other in a cycle: {_cycle(steps, placed)}")
        placed.update((s.label, s) for s in ready)
    return list(placed.values())


def _cycle(steps: list[Step], placed: dict[str, Step]) -> str:
    """One cycle among the steps not placed, as 'a -> b -> a'."""
    left = {s.label: s for s in steps if s.label not in placed}
    path = [next(iter(left))]
    while True:
        nxt = next(d for d in left[path[-1]].deps if d in left)
        if nxt in path:
            loop = path[path.index(nxt):] + [nxt]
            return " -> ".join(loop)
        path.append(nxt)


def _check_set(suite: Suite, name: str, inputs: list[Step], index: int, section: str = "scores") -> None:
    """A score's (or a comparison's) one set must be made by an attack of the suite or be in the workspace."""
    if not any(s.kind == "attack" and s.name == name for s in inputs) and \
            not (store.set_dir(name, suite.workspace) / store.SET_META).exists():
        raise RobenchError(f"{suite.source}: {_where(section, index)}: set '{name}' is made by no [[attacks]] entry "
                           f"and is not in workspace {suite.workspace}; add the attack or fix the name")


def _check_folders(suite: Suite) -> None:
    """A data folder the suite names must exist (a run would otherwise fail on it after hours of training)."""
    if suite.data_dir and not Path(suite.data_dir).expanduser().is_dir():
        raise RobenchError(f"{suite.source}: data_dir {suite.data_dir} does not exist; fix [study] data_dir or "
                           f"--data-dir (or unset $ROBENCH_DATA)")
    for i, entry in enumerate(suite.scores):
        folder = entry.get("data_dir")
        if folder and not Path(folder).expanduser().is_dir():
            raise RobenchError(f"{suite.source}: {_where('scores', i)}: data_dir {folder} does not exist; give an "
                               f"existing folder")


def _reads(kind: str, args: dict[str, Any], inputs: list[Step]) -> list[Step]:
    """The input steps a matrix or a score reads: the models its ``models`` patterns select, and the sets its
    ``sets`` / ``set`` select (a score that takes no set reads models only); a comparison reads its two targets
    and its set."""
    from robench.scoring.matrix import split_patterns
    from robench.suites.schema import score_fields

    if kind == "compare":  # [[compare]]: its two targets and its set
        return [s for s in inputs if s.name in ((args["set"],) if s.kind == "attack" else (args["a"], args["b"]))]
    takes = {"models", "sets"} if kind == "matrix" else set(score_fields(kind.removeprefix("score:")))
    models = split_patterns(args.get("models", "*"))
    sets = split_patterns(args.get("sets", args.get("set", "*"))) if takes & {"set", "sets"} else []

    def selected(s: Step) -> bool:
        patterns = sets if s.kind == "attack" else models
        return any(fnmatch.fnmatchcase(s.name, p) for p in patterns)

    return [s for s in inputs if selected(s)]


@contextlib.contextmanager
def _located(suite: Suite, section: str, index: int) -> Iterator[None]:
    """Prefix a RobenchError raised while planning an entry with the file and the entry."""
    try:
        yield
    except RobenchError as err:
        message = str(err).removeprefix(f"{suite.source}: ")
        raise RobenchError(f"{suite.source}: {_where(section, index)}: {message}") from None


def saved(suite: Suite, kind: str, name: str) -> bool:
    """True when the workspace holds the finished output of a train, import or attack step named ``name`` (a
    training with a checkpoint left is unfinished)."""
    if kind == "attack":
        return (store.set_dir(name, suite.workspace) / store.SET_META).exists()
    directory = store.model_dir(name, suite.workspace)
    return (directory / store.MODEL_META).exists() and not (kind == "train" and (directory / store.CHECKPOINT).exists())


def _train_step(suite: Suite, entry: dict[str, Any]) -> Step:
    from robench.api import planned_model_name

    args = {"dataset": suite.dataset, **entry}
    arch = args.pop("arch", None)
    if not arch:
        raise RobenchError("every [[models]] entry needs an arch (or [train] gives one)")
    name = planned_model_name(arch, **args)
    directory = store.model_dir(name, suite.workspace)
    return Step("train", name, {"arch": arch, **args, "name": name}, done=saved(suite, "train", name),
                resume=(directory / store.CHECKPOINT).exists())


def _import_step(suite: Suite, entry: dict[str, Any]) -> Step:
    args = {"dataset": suite.dataset, **entry}
    if not args.get("name") or not args.get("from"):
        raise RobenchError(f"{suite.source}: every [[imports]] entry needs a name and a from (a SPEC, as in "
                           f"`robench import NAME --from SPEC`)")
    name = store.check_name(args["name"])
    return Step("import", name, args, done=saved(suite, "import", name))


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


def _attack_step(suite: Suite, entry: dict[str, Any], makers: dict[str, Step]) -> Step:
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
    done = saved(suite, "attack", name)
    deps = []
    for source in sources:
        if source in makers:
            deps.append(makers[source].label)
        elif not (store.model_dir(source, suite.workspace) / store.MODEL_META).exists():
            raise RobenchError(f"set {name}: source '{source}' is made by no [[models]] or [[imports]] entry and is "
                               f"not in workspace {suite.workspace}; add it to the suite or fix the name")
    return Step("attack", name, {**args, "sources": sources, "method": method, "name": name}, done=done, deps=deps)


def _check_unique(steps: list[Step]) -> None:
    seen: set[str] = set()
    for s in steps:
        if s.label in seen:
            raise RobenchError(f"the suite makes {s.label} twice; give one of them another name or seed")
        seen.add(s.label)


def _out_path(suite: Suite, out: str) -> Path:
    """Where a result or figure goes, checked writable at plan time, so a bad path fails before any training."""
    path = Path(out)
    path = path if path.is_absolute() else suite.workspace / "results" / path
    try:
        writable(path.parent, "out or plot path")
    except RobenchError as err:
        raise RobenchError(f"{suite.source}: {err}") from None
    if path.is_dir():
        raise RobenchError(f"{suite.source}: cannot write a result to {path}: it is a folder; give a file name")
    return path


def _fresh(out: Path, suite: Suite, inputs: list[Step]) -> bool:
    """An output is up to date when it exists, every step it reads is done, and it is newer than their outputs."""
    if not out.exists() or not all(s.done for s in inputs):
        return False
    metas = [store.model_dir(s.name, suite.workspace) / store.MODEL_META for s in inputs
             if s.kind in ("import", "train")]
    metas += [store.set_dir(s.name, suite.workspace) / store.SET_META for s in inputs if s.kind == "attack"]
    newest = max((p.stat().st_mtime for p in metas if p.exists()), default=0.0)
    return out.stat().st_mtime >= newest




def plan_frame(steps: list[Step]) -> pd.DataFrame:
    """The plan as a table: step number, kind, name, status, the steps it runs after (their numbers) and the
    step's main settings."""
    number = {s.label: i for i, s in enumerate(steps, 1)}
    rows = []
    for i, s in enumerate(steps, 1):
        shown = {k: v for k, v in s.args.items() if k not in ("name", "arch", "from", "sources", "callback")}
        what = s.args.get("arch") or s.args.get("from") or ", ".join(s.args.get("sources", [])) or ""
        status = "done" if s.done else "resume" if s.resume else "todo"
        rows.append({"#": i, "step": s.kind, "name": s.name, "of": what, "status": status,
                     "after": _ranges(sorted(number[d] for d in s.deps)),
                     "settings": ", ".join(f"{k}={v}" for k, v in shown.items())})
    return pd.DataFrame(rows, columns=["#", "step", "name", "of", "status", "after", "settings"])


def _ranges(numbers: list[int]) -> str:
    """[1, 2, 3, 5] -> '1-3, 5'."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 2 else ", ".join(map(str, r)) for r in runs)
