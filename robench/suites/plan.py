"""A suite's plan: every step (import, train, attack, matrix, score), each marked done or not."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from robench import store
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

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name}"

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


