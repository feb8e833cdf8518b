"""The study report: one self-contained HTML page of a workspace's (or a suite's) results.

:func:`build_report` gathers a typed :class:`Report` from the workspace: its models (with their training curves),
its adversarial sets (with example grids), the tidy result files in ``WORKSPACE/results`` (each matrix as tables
and a heatmap, with intervals where the rows carry ``ci_low``/``ci_high``; each score as a table and its plot),
an optional plan, and the provenance of every number (weights and set hashes, versions, settings). :func:`render`
fills the jinja2 template ``templates/report.html.j2`` (autoescaped); figures are embedded as PNG data, so the page
opens offline. The page holds no clock time: the same workspace gives the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from robench import store
from robench._version import __version__
from robench.errors import RobenchError
from robench.files import atomic_path
from robench.records import ModelRecord, SetRecord
from robench.reports import papers, plots, tables
from robench.reports.labels import param_text, short_titles

MATRIX_COLUMNS = {"target", "source", "set", "attack", "relation", "n", "target_clean_accuracy", "defense_rate"}
RESULT_SUFFIXES = (".csv", ".json")
# a score file's columns -> its figure in robench.reports.plots (the other scores are tables only)
SCORE_FIGURES = ((("model", "sigma", "accuracy"), "noise_plot"), (("model", "k", "accuracy"), "shuffle_plot"),
                 (("keep", "defense_rate", "clean_accuracy"), "tradeoff_plot"),
                 (("model", "accuracy", "clean_accuracy", "folder"), "folder_plot"))
REPORT_DPI = 100
EXAMPLES = 6


@dataclass(frozen=True)
class Image:
    """A figure embedded in the page: alt text and a ``data:`` URI."""

    alt: str
    uri: str


@dataclass(frozen=True)
class Table:
    """A table as the page shows it: caption, header and rows of text (escaped by the template)."""

    caption: str
    header: list[str]
    rows: list[list[str]]
    kind: str = "table"  # a class for styling and for tests: matrix, interval, tidy, score, models, sets, plan ...


@dataclass
class ResultFile:
    """One result file of the workspace: a matrix (tables per attack, heatmap) or a score (table, plot)."""

    name: str
    path: str
    sha256: str
    kind: str  # "matrix" or "score"
    tables: list[Table] = field(default_factory=list)
    figures: list[Image] = field(default_factory=list)
    rows: Table | None = None  # the tidy rows, at full precision
    sources: str = ""  # the models and sets its numbers rest on


@dataclass
class ModelEntry:
    record: ModelRecord
    curves: Image | None
    warning: str | None


@dataclass
class SetEntry:
    record: SetRecord
    examples: Image | None
    stale: list[str]  # sources whose weights changed since the set was made


@dataclass
class Report:
    """Everything the page shows, gathered by :func:`build_report`."""

    title: str
    workspace: str
    version: str
    description: str = ""
    plan: Table | None = None
    results: list[ResultFile] = field(default_factory=list)
    models: list[ModelEntry] = field(default_factory=list)
    sets: list[SetEntry] = field(default_factory=list)
    model_table: Table | None = None
    set_table: Table | None = None
    provenance: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- figures and tables


def _image(draw, alt: str, dpi: int) -> Image:
    """A figure drawn by ``draw(buffer, fmt, dpi)`` as a PNG data URI."""
    buffer = io.BytesIO()
    draw(buffer, "png", dpi)
    return Image(alt, "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"))


def _text(value: Any) -> str:
    """A value of a data table as text: numbers at full precision (the shortest text that reads back the same
    float), whole numbers without decimals, missing values blank, records as JSON."""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and not math.isnan(value) and not value.is_integer():
        return repr(value)
    return tables.cell_text(value, missing="")


def frame_table(df: pd.DataFrame, caption: str, kind: str, index: bool = False) -> Table:
    """A DataFrame as a :class:`Table` (see :func:`_text`)."""
    if index:
        df = df.reset_index()
    return Table(caption, [str(c) for c in df.columns], [[_text(v) for v in row] for row in df.itertuples(index=False)],
                 kind)


def _percent(v: float) -> str:
    return "n/a" if v is None or math.isnan(v) else f"{v:.2f}"


def matrix_tables(df: pd.DataFrame, value: str = "defense_rate") -> list[Table]:
    """Per attack configuration: the papers' table (targets x sources, % with relation markers and small-n counts)
    and, where the rows carry ``ci_low``/``ci_high``, the intervals of its cells."""
    attacks = list(dict.fromkeys(df["attack"]))
    titles = dict(zip(attacks, short_titles(plots.attack_configs(df, attacks)), strict=True))
    name = value.replace("_", " ")
    out = []
    intervals = {"ci_low", "ci_high"} <= set(df.columns)
    lows, highs = (tables.wide(df, "ci_low"), tables.wide(df, "ci_high")) if intervals else ({}, {})
    for attack, table in tables.marked(df, value).items():
        caption = f"{attack} ({titles[attack]}): {name} (%)"
        out.append(frame_table(table.rename_axis("target"), caption, "matrix", index=True))
        if intervals:
            low, high = lows[attack].drop(columns=tables.CLEAN), highs[attack].drop(columns=tables.CLEAN)
            cells = low.copy().astype(object)
            for col in low.columns:
                cells[col] = [f"{_percent(a)} – {_percent(b)}" for a, b in zip(low[col], high[col], strict=True)]
            out.append(frame_table(cells.rename_axis("target"), f"{attack}: interval of the {name} (%)",
                                   "interval", index=True))
    return out


def paper_tables(df: pd.DataFrame) -> list[Table]:
    """The matrix beside the paper's Table 4, where it holds the Table's cells (else nothing)."""
    ours = papers.ours_frame(df)
    if ours.empty:
        return []
    rising, pairs = papers.monotone(ours)
    caption = (f"beside the Defective CNN paper's Table 4 (CIFAR-10, PGD 16/255): defense rate, ours / paper (%); "
               f"it rises at every step of keep 1 → 0.5 → 0.3 in {rising} of {pairs} (target, source) pairs here")
    return [frame_table(papers.side_by_side_frame(ours, papers.paper_frame()), caption, "paper")]


# ---------------------------------------------------------------- gathering


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_result(path: Path) -> pd.DataFrame:
    """A tidy result file (csv or json rows); anything else is a RobenchError."""
    try:
        if path.suffix.lower() == ".json":
            return pd.read_json(io.StringIO(path.read_text()), orient="records")
        return pd.read_csv(path)
    except (ValueError, OSError, pd.errors.ParserError) as err:
        raise RobenchError(f"cannot read result file {path} ({err})") from None


def _result(path: Path, dpi: int) -> ResultFile:
    df = read_result(path)
    if df.empty:
        raise RobenchError(f"result file {path} holds no rows")
    entry = ResultFile(path.name, str(path), _sha256(path), "score")
    if MATRIX_COLUMNS <= set(df.columns):
        entry.kind = "matrix"
        entry.tables = matrix_tables(df) + paper_tables(df)
        entry.figures = [_image(lambda b, f, d: plots.heatmap(df, b, fmt=f, dpi=d), f"heatmap of {path.name}", dpi)]
        targets, sets = (", ".join(dict.fromkeys(df[c].astype(str))) for c in ("target", "set"))
        entry.sources = f"targets {targets}; sets {sets}"
    else:
        for columns, figure in SCORE_FIGURES:
            if set(columns) <= set(df.columns):
                draw = getattr(plots, figure)
                entry.figures = [_image(lambda b, f, d, draw=draw: draw(df, b, fmt=f, dpi=d), f"plot of {path.name}",
                                        dpi)]
                break
        if "model" in df.columns:
            entry.sources = f"models {', '.join(dict.fromkeys(df['model'].astype(str)))}"
    entry.rows = frame_table(df, f"{path.name}: every row", "tidy" if entry.kind == "matrix" else "score")
    return entry


def _model_entry(record: ModelRecord, dpi: int) -> ModelEntry:
    curves = None
    if record.history:
        classes = record.dataset.num_classes

        def draw(buffer, fmt, d):
            return plots.training_plot(record.history, buffer, f"{record.name}: training", record.clean_accuracy,
                                       classes, fmt=fmt, dpi=d)

        curves = _image(draw, f"training curves of {record.name}", dpi)
    return ModelEntry(record, curves, record.chance_warning())


def _set_entry(record: SetRecord, workspace: Path, models: dict[str, ModelRecord], n: int, seed: int,
               dpi: int) -> SetEntry:
    stale = [s.name for s in record.sources if s.name in models and models[s.name].weights_sha256
             and s.weights_sha256 and models[s.name].weights_sha256 != s.weights_sha256]
    examples = None
    if n > 0 and record.n > 0:
        advset = store.load_set(record.path or record.name, workspace)
        chosen = plots.pick(len(advset), n, seed)
        classes = list(record.dataset.classes) if record.dataset.classes else None
        title = f"{record.name} ({record.method}); predictions of the source"

        def draw(buffer, fmt, d):
            return plots.examples_grid(advset.clean[chosen], advset.adv[chosen], advset.labels[chosen],
                                       advset.source_pred[chosen], buffer, None, title, classes, fmt=fmt, dpi=d)

        examples = _image(draw, f"examples of {record.name}", dpi)
    return SetEntry(record, examples, stale)


def _short(sha: str) -> str:
    return sha[:12] if sha else ""


def _models_table(models: list[ModelEntry]) -> Table:
    rows = []
    for m in models:
        r = m.record
        acc = "" if r.clean_accuracy is None else f"{100 * r.clean_accuracy:.2f}"
        rows.append([r.name, r.arch, _text(r.config.keep), _text(r.config.placement), r.dataset.label,
                     r.origin.spec or r.origin.kind, str(r.epochs), acc, "yes" if m.warning else "no"])
    return Table("models", ["name", "arch", "keep", "placement", "data", "origin", "epochs", "clean acc (%)",
                            "near chance"], rows, "models")


def _sets_table(sets: list[SetEntry]) -> Table:
    rows = []
    for s in sets:
        r = s.record
        rate = "" if r.success_rate is None else f"{100 * r.success_rate:.2f}"
        eps = "" if r.params.eps is None else param_text("eps", r.params.eps, r.params.linf)
        rows.append([r.name, r.source_label, r.method, r.backend, eps, r.target or "",
                     r.dataset.label, str(r.attempted), str(r.n), rate])
    return Table("adversarial sets", ["name", "sources", "method", "backend", "eps", "target", "data", "attempted",
                                      "n", "success (%)"], rows, "sets")


def _provenance(models: list[ModelEntry], sets: list[SetEntry], results: list[ResultFile]) -> list[Table]:
    """Where every number comes from: each model's weights and settings, each set's hash, sources and settings,
    each result file's hash."""
    model_rows = [[r.name, r.weights_sha256, r.origin.kind + (f" {r.origin.spec}" if r.origin.spec else ""),
                   _text(r.config.to_json()),
                   f"{r.dataset.label} ({r.dataset.n_train} train / {r.dataset.n_test} test; "
                   f"{_short(r.dataset.fingerprint or '') or 'no fingerprint'})", _text(r.seed), r.preset or "",
                   _text(r.recipe.to_json() if r.recipe else {}), f"{r.device or ''} {r.precision}".strip(),
                   _text(r.versions), r.created]
                  for r in (m.record for m in models)]
    set_rows = [[r.name, r.sha256, ", ".join(f"{s.name}@{_short(s.weights_sha256)}" for s in r.sources)
                 + (f" (changed since: {', '.join(e.stale)})" if e.stale else ""),
                 f"{r.method} via {r.backend} {r.backend_version}".strip(), _text(r.params.to_json()), str(r.seed),
                 f"{r.dataset.label} ({_short(r.dataset.fingerprint or '') or 'no fingerprint'})",
                 f"{r.device or ''} {r.precision}".strip(), _text(r.versions), r.created]
                for e in sets for r in [e.record]]
    file_rows = [[f.name, f.sha256, f.kind, f.sources] for f in results]
    return [
        Table("models: weights (sha256) and settings",
              ["name", "weights sha256", "origin", "config", "data", "seed", "preset", "recipe", "device",
               "versions", "created"], model_rows, "provenance"),
        Table("adversarial sets: contents (sha256), sources (name@weights) and settings",
              ["name", "sha256", "sources", "attack", "params", "seed", "data", "device", "versions", "created"],
              set_rows, "provenance"),
        Table("result files", ["file", "sha256", "kind", "rests on"], file_rows, "provenance"),
    ]


def result_files(workspace: str | os.PathLike | None = None) -> list[Path]:
    """The tidy result files (csv, json) in ``WORKSPACE/results``, sorted by name."""
    root = store.workspace_dir(workspace) / "results"
    return sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in RESULT_SUFFIXES) \
        if root.is_dir() else []


def build_report(workspace: str | os.PathLike | None = None, *, results: list[str | os.PathLike] | None = None,
                 plan: pd.DataFrame | None = None, title: str | None = None, description: str = "",
                 examples: int = EXAMPLES, seed: int = 0, dpi: int = REPORT_DPI) -> Report:
    """Gather the report of a workspace: every model and set, and the ``results`` files (default: every csv and
    json in ``WORKSPACE/results``); ``plan`` (a suite's plan frame) is shown first. ``examples`` images per set
    (0: none), picked with ``seed``; figures at ``dpi``."""
    ws = store.workspace_dir(workspace)
    if not ws.is_dir():
        raise RobenchError(f"no workspace at {ws}; pass --workspace (or -w) naming one")
    report = Report(title or f"robench report: {ws.name}", str(ws), __version__, description)
    if plan is not None:
        report.plan = frame_table(plan, "plan", "plan")
    for path in (Path(p) for p in (result_files(ws) if results is None else results)):
        if not path.is_file():
            report.notes.append(f"{path.name}: not written yet")
            continue
        try:
            report.results.append(_result(path, dpi))
        except RobenchError as err:
            report.notes.append(str(err))
    records = store.list_model_records(ws)
    report.models = [_model_entry(r, dpi) for r in records]
    named = {r.name: r for r in records}
    report.sets = [_set_entry(r, ws, named, examples, seed, dpi) for r in store.list_set_records(ws)]
    report.model_table, report.set_table = _models_table(report.models), _sets_table(report.sets)
    report.provenance = _provenance(report.models, report.sets, report.results)
    if not report.results:
        report.notes.append(f"no result files in {ws / 'results'}: write a matrix there with "
                            f"`robench matrix -w {ws} --out {ws / 'results' / 'matrix.csv'}`, or run a suite")
    return report


# ---------------------------------------------------------------- rendering


def render(report: Report) -> str:
    """The report as one HTML page (jinja2, autoescaped)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(loader=PackageLoader("robench.reports", "templates"), undefined=StrictUndefined,
                      autoescape=select_autoescape(default=True, default_for_string=True), trim_blocks=True,
                      lstrip_blocks=True, keep_trailing_newline=True)
    return env.get_template("report.html.j2").render(report=report, legend=tables.legend())


def write_page(out: str | os.PathLike, page: str) -> Path:
    """Write a rendered page to ``out`` atomically; returns the path."""
    with atomic_path(out) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return Path(out)


def write_report(out: str | os.PathLike, workspace: str | os.PathLike | None = None, **options: Any) -> Path:
    """Build the report of ``workspace`` (options: see :func:`build_report`) and write it to ``out`` atomically;
    returns the path."""
    return write_page(out, render(build_report(workspace, **options)))
