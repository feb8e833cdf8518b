"""`robench report`: the HTML page of a small study holds every model, set and matrix cell, embeds its figures,
opens offline and is the same bytes when written twice."""

from __future__ import annotations

import base64
import math
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import robench
from robench import store
from robench.cli.app import app
from robench.reports import html
from robench.reports.tables import CLEAN

runner = CliRunner()


class Page(HTMLParser):
    """A parsed page: its tables (class, caption, rows of cell text), its images' src and every link target."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: list[dict] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self.text: list[str] = []
        self._cell: list[str] | None = None
        self._caption = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("src", "href"):
            if attrs.get(key) is not None:
                self.links.append(attrs[key])
        if tag == "img":
            self.images.append(attrs["src"])
        elif tag == "table":
            self.tables.append({"class": attrs.get("class"), "caption": "", "rows": []})
        elif tag == "caption":
            self._caption = True
        elif tag == "tr":
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1]["rows"][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "caption":
            self._caption = False

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)
        elif self._caption:
            self.tables[-1]["caption"] += data

    def of(self, kind: str) -> list[dict]:
        return [t for t in self.tables if t["class"] == kind]


@pytest.fixture(scope="module")
def study(trained_ws, tmp_path_factory) -> Path:
    """A copy of the trained workspace with a PGD set, the matrix and a noise curve in results/."""
    ws = tmp_path_factory.mktemp("report") / "ws"
    shutil.copytree(trained_ws, ws)
    robench.attack("tiny", "pgd", eps="16/255", steps=5, n=40, workspace=ws, device="cpu")
    (ws / "results").mkdir()
    robench.matrix(workspace=ws, device="cpu").to_csv(ws / "results" / "matrix.csv", index=False)
    robench.noise_curve(workspace=ws, n=40, sigmas=[0.0, 0.1], device="cpu").to_csv(ws / "results" / "noise.csv",
                                                                                    index=False)
    return ws


@pytest.fixture(scope="module")
def page(study, tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("page") / "report.html"
    html.write_report(out, study)
    return out, out.read_text()


def test_report_holds_every_model_set_and_matrix_cell(study, page):
    parsed = Page(page[1])
    models = [r.name for r in store.list_model_records(study)]
    assert models == ["tiny", "tiny-keep0.3-bottom"]
    (model_table,) = parsed.of("models")
    assert [row[0] for row in model_table["rows"][1:]] == models
    sets = robench.list_sets(study)
    (set_table,) = parsed.of("sets")
    assert [row[0] for row in set_table["rows"][1:]] == list(sets["name"])

    csv = pd.read_csv(study / "results" / "matrix.csv")
    (matrix,) = parsed.of("matrix")  # one attack configuration
    header, *rows = matrix["rows"]
    assert header[:2] == ["target", CLEAN]
    cells = {(row[0], source): text for row in rows for source, text in zip(header[2:], row[2:], strict=True)}
    clean = {row[0]: float(row[1]) for row in rows}
    assert len(cells) == len(csv) == 2
    for r in csv.itertuples():
        shown = re.match(r"^(\d+\.\d\d)", cells[(r.target, r.source)]).group(1)  # '0.00 [w]', '97.50'
        assert float(shown) == pytest.approx(round(100 * r.defense_rate, 2), abs=0.006)
        assert clean[r.target] == pytest.approx(100 * r.target_clean_accuracy, abs=0.006)
        assert ("[w]" in cells[(r.target, r.source)]) == (r.relation == "white-box")
    (tidy,) = parsed.of("tidy")  # every row at full precision, in the CSV's column order
    assert tidy["rows"][0] == list(csv.columns) and len(tidy["rows"]) == len(csv) + 1
    for shown, r in zip(tidy["rows"][1:], csv.itertuples(index=False), strict=True):
        assert int(shown[list(csv.columns).index("n")]) == r.n
        assert float(shown[list(csv.columns).index("defense_rate")]) == r.defense_rate  # full precision
    (intervals,) = parsed.of("interval")  # robench matrix writes each cell's interval (ci_low, ci_high)
    shown = {(row[0], s): text for row in intervals["rows"][1:] for s, text in zip(intervals["rows"][0][1:], row[1:],
                                                                                  strict=True)}
    for r in csv.itertuples():
        assert shown[(r.target, r.source)] == f"{100 * r.ci_low:.2f} – {100 * r.ci_high:.2f}"
    (noise,) = parsed.of("score")
    assert len(noise["rows"]) == len(pd.read_csv(study / "results" / "noise.csv")) + 1


def test_report_provenance_names_every_hash(study, page):
    text = page[1]
    for record in store.list_model_records(study):
        assert record.weights_sha256 and record.weights_sha256 in text
    for record in store.list_set_records(study):
        assert record.sha256 in text and f"tiny@{record.sources[0].weights_sha256[:12]}" in text
    for path in (study / "results").iterdir():
        assert html._sha256(path) in text
    assert f"robench {robench.__version__}" in text


def test_report_embeds_every_figure_and_links_nowhere(study, page):
    parsed = Page(page[1])
    # heatmap, noise plot, two training curves, one example grid
    assert len(parsed.images) == 5
    for src in parsed.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert all(link.startswith(("data:", "#")) for link in parsed.links), parsed.links
    assert not re.search(r"(?i)<script|https?://", page[1])
    alts = re.findall(r'alt="([^"]*)"', page[1])
    assert {"training curves of tiny", "training curves of tiny-keep0.3-bottom"} <= set(alts)


def test_report_is_the_same_bytes_twice(study, page, tmp_path):
    again = html.write_report(tmp_path / "again.html", study)
    assert again.read_bytes() == page[0].read_bytes()
    times = re.findall(r"\d\d:\d\d:\d\d(?:\+00:00)?", page[1])
    assert all(t.endswith("+00:00") for t in times)  # the only times are the records' (UTC) creation times


def test_intervals_are_shown_where_the_rows_have_them(study, tmp_path):
    ws = tmp_path / "ws"
    shutil.copytree(study, ws)
    df = pd.read_csv(ws / "results" / "matrix.csv")
    df["ci_low"], df["ci_high"] = df["defense_rate"] * 0.9, (df["defense_rate"] + 0.05).clip(upper=1)
    df.to_csv(ws / "results" / "matrix.csv", index=False)
    (intervals,) = Page(html.render(html.build_report(ws, examples=0))).of("interval")
    no_ci = tmp_path / "no-ci"
    shutil.copytree(ws, no_ci)
    df.drop(columns=["ci_low", "ci_high"]).to_csv(no_ci / "results" / "matrix.csv", index=False)
    assert not Page(html.render(html.build_report(no_ci, examples=0))).of("interval")  # none without the columns
    header, *rows = intervals["rows"]
    shown = {(row[0], s): text for row in rows for s, text in zip(header[1:], row[1:], strict=True)}
    for r in df.itertuples():
        assert shown[(r.target, r.source)] == f"{100 * r.ci_low:.2f} – {100 * r.ci_high:.2f}"


def test_text_is_escaped_and_the_plan_shown(study):
    plan = pd.DataFrame([{"#": 1, "step": "train", "name": "<b>x</b>", "status": "done"}])
    text = html.render(html.build_report(study, plan=plan, description="a <script>alert(1)</script> study",
                                         examples=0))
    assert "<script>" not in text and "&lt;script&gt;" in text and "&lt;b&gt;x&lt;/b&gt;" in text
    (shown,) = Page(text).of("plan")
    assert shown["rows"] == [["#", "step", "name", "status"], ["1", "train", "<b>x</b>", "done"]]


def test_unreadable_results_and_no_results_are_noted(study, tmp_path):
    ws = tmp_path / "ws"
    shutil.copytree(study, ws, ignore=shutil.ignore_patterns("results"))
    report = html.build_report(ws, examples=0)
    assert not report.results and any("robench matrix" in n for n in report.notes)
    (ws / "results").mkdir()
    (ws / "results" / "broken.json").write_text("{not json")
    report = html.build_report(ws, examples=0)
    assert any("broken.json" in n for n in report.notes)


def test_cli_writes_the_page_and_refuses_a_missing_workspace(study, tmp_path):
    out = tmp_path / "r.html"
    result = runner.invoke(app, ["report", "-w", str(study), "--out", str(out), "--examples", "2"])
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("<!DOCTYPE html>") and "wrote" in result.output
    result = runner.invoke(app, ["report", "-w", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.html")])
    assert result.exit_code == 1 and "no workspace" in result.output and not (tmp_path / "x.html").exists()


def test_listings_and_name_errors_answer_without_torch(study, tmp_path):
    """`robench models` / `sets` and a mistyped model, set, pattern or --from SPEC are answered from the JSON
    records: torch is never imported (the ~4.7 s of importing it is saved)."""
    ws = str(study)
    ok = [["models", "-w", ws], ["sets", "-w", ws]]
    typos = [["attack", "-s", "tiyn", "-w", ws], ["matrix", "-M", "tiyn*", "-w", ws],
             ["matrix", "-S", "nope", "-w", ws], ["scores", "noise", "-M", "tiyn", "-w", ws],
             ["plot", "examples", "nope", "-w", ws], ["plot", "noise", "-M", "tiyn", "-w", ws],
             ["plot", "heatmap", "-S", "nope", "-w", ws], ["plot", "tradeoff", "--set", "nope", "-w", ws],
             ["import", "x", "--from", "onnx:m.onnx", "--dataset", "digits", "-w", ws],
             ["import", "x", "--from", f"state-dict:{tmp_path / 'missing.pt'}", "--arch", "tiny", "--dataset",
              "digits", "-w", ws]]
    code = "\n".join([
        "import sys", "from typer.testing import CliRunner", "from robench.cli.app import app",
        f"for args in {ok!r}:", "    r = CliRunner().invoke(app, args)",
        "    assert r.exit_code == 0 and 'tiny' in r.output, r.output",
        f"for args in {typos!r}:", "    r = CliRunner().invoke(app, args)",
        "    assert r.exit_code == 1 and r.output.startswith('error: ') and r.output.count(chr(10)) == 1, r.output",
        "    assert any(w in r.output for w in ('tiny', 'nope', 'onnx', 'missing.pt')), r.output",
        "print(sorted(m for m in ('torch', 'matplotlib', 'safetensors') if m in sys.modules))",
    ])
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr


# ---------------------------------------------------------------- in a browser


@pytest.mark.slow
def test_the_page_loads_in_headless_chromium(study, page):
    """As a person opens it: no console error, every image decoded (naturalWidth > 0), each table's rows."""
    from browser import Chromium, find_chromium

    if find_chromium() is None:
        pytest.skip("no chromium on PATH")
    with Chromium() as chromium:
        loaded = chromium.load(page[0].resolve().as_uri())
        images = loaded.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.alt])")
        rows = loaded.evaluate("Array.from(document.querySelectorAll('table')).map(t => [t.className, t.rows.length])")
    assert not loaded.errors, loaded.errors
    assert len(images) == 5 and all(done and width > 0 for done, width, _ in images), images
    expected = {(t["class"], len(t["rows"])) for t in Page(page[1]).tables}
    assert {(kind, n) for kind, n in rows} == expected
    assert ("matrix", 3) in expected and ("models", 3) in expected and ("sets", 2) in expected


def test_near_chance_is_a_binomial_margin():
    from scipy.stats import binom

    from robench.records import near_chance

    assert near_chance(0.1, 10, 360) and near_chance(0.0, 10, 360) and near_chance(0.12, 10, 10000)
    assert not near_chance(0.14, 10, 10000) and not near_chance(0.5, 10, 360)
    assert not near_chance(None, 10, 360) and not near_chance(math.nan, 10, 360)
    # 360 images of 10 classes: the smallest count of right answers a guesser reaches less than 0.1% of the time
    edge = next(k for k in range(360) if binom.sf(k - 1, 360, 0.1) < 0.001)
    assert near_chance((edge - 1) / 360, 10, 360) and not near_chance(edge / 360, 10, 360)
    assert near_chance(0.6, 2, 100) and not near_chance(0.7, 2, 100)


def test_train_and_import_warn_near_chance(tmp_path, caplog, monkeypatch):
    """A model that has not learned (here: one that always answers 0) is flagged at the end of train and import."""
    module = tmp_path / "constant_model.py"
    module.write_text("import torch\n\nclass Zero(torch.nn.Module):\n    def forward(self, x):\n"
                      "        out = torch.zeros(len(x), 10)\n        out[:, 0] = 1\n        return out\n\n"
                      "def build():\n    return Zero()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with caplog.at_level("WARNING"):
        record = robench.import_model("zero", "python:constant_model:build", dataset="digits",
                                      workspace=tmp_path / "ws", device="cpu")
    assert record.near_chance and any("near chance" in r.message and "zero" in r.message for r in caplog.records)
    caplog.clear()
    with caplog.at_level("WARNING"):
        record = robench.train("tiny", dataset="digits", workspace=tmp_path / "ws", preset="quick", epochs=1, lr=1e-9,
                               device="cpu")
    assert record.near_chance == any("near chance" in r.message for r in caplog.records)
    assert record.near_chance, record.clean_accuracy  # lr 1e-9: the weights stay at their initialisation


# ---------------------------------------------------------------- suites


SUITE = """
[study]
name = "small"
description = "two tiny models on digits"
dataset = "digits"

[train]
preset = "quick"
epochs = 4

[[models]]
arch = "tiny"
keep = [1.0, 0.3]

[[attacks]]
source = "tiny"
method = "pgd"
eps = "16/255"
steps = 5
n = 40

[matrix]
out = "small-matrix.csv"

[report]
out = "small.html"
examples = 2
"""


def test_a_suite_run_writes_its_report_with_the_plan(study, tmp_path):
    from robench import suites

    ws = tmp_path / "ws"
    shutil.copytree(study, ws, ignore=shutil.ignore_patterns("results"))
    (tmp_path / "small.toml").write_text(SUITE)
    suite = suites.load_suite(tmp_path / "small.toml", ws)
    assert [s.done for s in suites.plan(suite)] == [True, True, True, False]  # trained and attacked by the fixture
    run = suites.run(suite, device="cpu")
    assert run.ok and run.page == ws / "results" / "small.html"
    parsed = Page(run.page.read_text())
    (plan,) = parsed.of("plan")
    assert [row[1:5] for row in plan["rows"][1:]] == [
        ["train", "tiny", "tiny", "done"], ["train", "tiny-keep0.3-bottom", "tiny", "done"],
        ["attack", "tiny-pgd-eps16-steps5-n40", "tiny", "done"], ["matrix", "small-matrix.csv", "", "done"]]
    (matrix,) = parsed.of("matrix")
    assert len(matrix["rows"]) == 3 and "two tiny models on digits" in "".join(parsed.text)
    assert len(parsed.images) == 1 + 2 + 1  # the heatmap, two training curves, one example grid

    out = tmp_path / "cli.html"  # `robench report SUITE` writes the same page
    result = runner.invoke(app, ["report", str(tmp_path / "small.toml"), "-w", str(ws), "--out", str(out),
                                 "--examples", "2"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == run.page.read_bytes()


def test_a_matrix_of_table4_cells_is_set_beside_the_paper():
    from robench.reports import papers

    rows = [{"target": f"{arch}-k{keep}", "source": f"{src}-seed1", "target_arch": arch, "target_keep": keep,
             "defense_rate": vals[i] / 100, "target_clean_accuracy": vals[-1] / 100, "method": "pgd", "eps": 16 / 255,
             "relation": "black-box", "n": 100}
            for (arch, keep), vals in papers.PAPER.items() for i, src in enumerate(papers.ARCHS)]
    (table,) = html.paper_tables(pd.DataFrame(rows))
    assert len(table.rows) == 15 and table.rows[0][:3] == ["resnet18", "1", "6.0 / 6.0"]
    assert "25 of 25" in table.caption
    assert html.paper_tables(pd.DataFrame(rows).assign(eps=8 / 255)) == []  # no Table 4 cells
    # as in the demo: no keep 0.5 or 0.3; the source is a target too (its own rows are not the Table's); two seeds
    standard = [r for r in rows if r["target_keep"] == 1.0 and r["source"] == "resnet18-seed1"]
    source_row = {**standard[0], "target": "resnet18-seed1", "defense_rate": 0.0, "relation": "white-box"}
    seed2 = {**standard[0], "target": "resnet18-k1.0-seed2", "defense_rate": standard[0]["defense_rate"] + 0.02}
    (table,) = html.paper_tables(pd.DataFrame([*standard, source_row, seed2]))
    resnet18 = [f"{papers.PAPER[(a, 1.0)][0]:.1f}" for a in papers.ARCHS]  # the resnet18 source's column
    assert "0 of 0" in table.caption and [row[:4] for row in table.rows] == [
        ["resnet18", "1", "7.0 / 6.0", "-"], *([a, "1", f"{v} / {v}", "-"] for a, v in zip(papers.ARCHS[1:],
                                                                                          resnet18[1:], strict=True))]
