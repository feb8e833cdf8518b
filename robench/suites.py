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

    [attack]                      # defaults for every [[attacks]] entry
    n = 500

    [[attacks]]
    source = ["resnet18-seed1"]   # one set per source; `ensemble = [...]` makes one fused source
    method = "pgd"
    eps = "16/255"

    [matrix]
    out = "matrix.csv"            # relative paths land in WORKSPACE/results/

    [[scores]]
    kind = "tradeoff"             # boundary | noise | shuffle | tradeoff
    set = "densenet121-seed1-pgd-eps16"
    models = "resnet18*"
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
from collections.abc import Callable
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
SCORE_KINDS = ("boundary", "noise", "shuffle", "tradeoff")


@dataclass
class Step:
    """One unit of work: train a model, make a set, compute the matrix or a score."""

    kind: str
    name: str
    args: dict[str, Any]
    out: Path | None = None
    done: bool = False
    resume: bool = False

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
    description: str = ""
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


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
    known = {"study", "train", "models", "attack", "attacks", "matrix", "scores"}
    unknown = set(raw) - known
    if unknown:
        raise RobenchError(f"{source}: unknown section(s) {', '.join(sorted(unknown))}; "
                           f"use {', '.join(sorted(known))}")
    study = raw.get("study", {})
    scores = raw.get("scores", [])
    for s in scores:
        if s.get("kind") not in SCORE_KINDS:
            raise RobenchError(f"{source}: score kind '{s.get('kind')}' is not one of {', '.join(SCORE_KINDS)}")
    return Suite(
        name=study.get("name", Path(source).stem), description=study.get("description", ""),
        workspace=store.workspace_dir(workspace or study.get("workspace")),
        dataset=study.get("dataset", "cifar10"), data_dir=str(data_dir or study.get("data_dir") or "") or None,
        train_defaults=raw.get("train", {}), models=raw.get("models", []),
        attack_defaults=raw.get("attack", {}), attacks=raw.get("attacks", []),
        matrix=raw.get("matrix"), scores=scores, source=source,
    )


def plan(suite: Suite) -> list[Step]:
    """Every step of the suite, in order, each marked done or not."""
    steps = [_train_step(suite, e) for entry in suite.models for e in grid({**suite.train_defaults, **entry})]
    for entry in suite.attacks:
        steps += [_attack_step(suite, e) for e in _attack_entries({**suite.attack_defaults, **entry})]
    _check_unique(steps)
    inputs = [s for s in steps if s.kind in ("train", "attack")]
    if suite.matrix is not None:
        out = _out_path(suite, suite.matrix.get("out", f"{suite.name}-matrix.csv"))
        args = {k: v for k, v in suite.matrix.items() if k != "out"}
        steps.append(Step("matrix", out.name, args, out, _fresh(out, suite, inputs)))
    for i, score in enumerate(suite.scores):
        out = _out_path(suite, score.get("out", f"{suite.name}-{score['kind']}-{i}.csv"))
        args = {k: v for k, v in score.items() if k not in ("kind", "out")}
        steps.append(Step(f"score:{score['kind']}", out.name, args, out, _fresh(out, suite, inputs)))
    return steps


def _train_step(suite: Suite, entry: dict[str, Any]) -> Step:
    from robench.api import planned_model_name

    args = {"dataset": suite.dataset, **entry}
    arch = args.pop("arch", None)
    if not arch:
        raise RobenchError(f"{suite.source}: every [[models]] entry needs an arch")
    name = planned_model_name(arch, **args)
    directory = store.model_dir(name, suite.workspace)
    done = (directory / store.MODEL_META).exists() and not (directory / store.CHECKPOINT).exists()
    return Step("train", name, {"arch": arch, **args, "name": name}, done=done,
                resume=(directory / store.CHECKPOINT).exists())


def _attack_entries(entry: dict[str, Any]) -> list[dict[str, Any]]:
    if "ensemble" in entry:
        entry = {**entry, "sources": entry.pop("ensemble")}
        return grid(entry)
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
                                                         "batch_size")}
    params = resolve_params(spec, **given)
    name = args.get("name") or default_set_name(sources, spec, params, backend.name, args.get("seed", 0),
                                                 args.get("n", 5000))
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
    metas = [store.model_dir(s.name, suite.workspace) / store.MODEL_META for s in inputs if s.kind == "train"]
    metas += [store.set_dir(s.name, suite.workspace) / store.SET_META for s in inputs if s.kind == "attack"]
    newest = max((p.stat().st_mtime for p in metas if p.exists()), default=0.0)
    return out.stat().st_mtime >= newest




def run_step(suite: Suite, step: Step, callback: Callback | None = None, device: str | None = None) -> Any:
    """Run one step (whether or not it is done) and return its result (metadata or DataFrame)."""
    from robench.api import train
    from robench.attacks import attack
    from robench.scoring import boundary_scores, matrix, noise_curve, shuffle_curve, tradeoff

    common = {"workspace": suite.workspace, "data_dir": suite.data_dir, "device": device, "callback": callback}
    if step.kind == "train":
        args = dict(step.args)
        return train(args.pop("arch"), **args, resume=step.resume, **common)
    if step.kind == "attack":
        args = dict(step.args)
        return attack(args.pop("sources"), args.pop("method"), **args, **common)
    scorers = {"matrix": matrix, "score:boundary": boundary_scores, "score:noise": noise_curve,
               "score:shuffle": shuffle_curve, "score:tradeoff": tradeoff}
    args = dict(step.args)
    if step.kind == "score:tradeoff":
        args["set_name"] = args.pop("set")
    df: pd.DataFrame = scorers[step.kind](**args, **common)
    write_csv(df, step.out)
    return df


def write_csv(df: pd.DataFrame, path: Path) -> None:
    """Write a DataFrame as CSV atomically."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


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
        shown = {k: v for k, v in s.args.items() if k not in ("name", "arch", "sources", "callback")}
        what = s.args.get("arch") or ", ".join(s.args.get("sources", [])) or ""
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
