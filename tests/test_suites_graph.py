"""A suite as a graph: each step's dependencies, the checks made before anything runs, and a run where one step
fails (sequential executor; the Ray executor is in test_suites_ray.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from robench import store, suites
from robench.cli.app import app
from robench.errors import RobenchError

SUITES = Path(__file__).resolve().parents[1] / "benchmarks" / "suites"


def edges(steps: list[suites.Step]) -> dict[str, set[str]]:
    return {s.label: set(s.deps) for s in steps}


def test_table4_graph_has_exactly_the_expected_edges(tmp_path):
    steps = suites.plan(suites.load_suite(SUITES / "table4.toml", tmp_path))
    archs = ["resnet18", "resnet50", "densenet121", "senet18", "vgg19"]
    targets = [f"train {a}{k}" for a in archs for k in ("", "-keep0.5-bottom", "-keep0.3-bottom")]
    sets = [f"attack {a}-seed1-pgd-eps16" for a in archs]
    expected = {t: set() for t in targets}
    expected.update({f"train {a}-seed1": set() for a in archs})
    expected.update({s: {f"train {a}-seed1"} for s, a in zip(sets, archs, strict=True)})
    expected["matrix table4.csv"] = set(targets) | set(sets)  # its models pattern leaves the sources out
    assert edges(steps) == expected
    position = {s.label: i for i, s in enumerate(steps)}
    assert all(position[d] < position[s.label] for s in steps for d in s.deps)  # topological


def test_scores_depend_on_what_they_read_and_imports_are_sources(tmp_path):
    raw = {
        "study": {"dataset": "digits"},
        "imports": [{"name": "tv", "from": "torchvision:resnet18"}],
        "models": [{"arch": "tiny", "keep": [1.0, 0.5]}, {"arch": "resnet18", "seed": 1}],
        "attack": {"method": "fgsm", "eps": "8/255"},
        "attacks": [{"source": "tv"}, {"ensemble": ["tv", "resnet18-seed1"]}],
        "matrix": {"models": "tiny*", "sets": "tv-*"},
        "scores": [{"kind": "tradeoff", "set": "tv-fgsm-eps8", "models": "tiny-keep*"},
                   {"kind": "noise", "models": "resnet18*"}],
    }
    steps = suites.plan(suites.suite_from_dict(raw, tmp_path))
    ensemble = next(s.label for s in steps if s.kind == "attack" and "+" in s.name)
    assert edges(steps) == {
        "import tv": set(), "train tiny": set(), "train tiny-keep0.5-bottom": set(), "train resnet18-seed1": set(),
        "attack tv-fgsm-eps8": {"import tv"}, ensemble: {"import tv", "train resnet18-seed1"},
        next(s.label for s in steps if s.kind == "matrix"): {"train tiny", "train tiny-keep0.5-bottom",
                                                              "attack tv-fgsm-eps8"},
        next(s.label for s in steps if s.kind == "score:tradeoff"): {"train tiny-keep0.5-bottom",
                                                                      "attack tv-fgsm-eps8"},
        next(s.label for s in steps if s.kind == "score:noise"): {"train resnet18-seed1"},
    }


def test_a_source_already_in_the_workspace_is_no_dependency(tmp_path):
    held = store.model_dir("held", tmp_path)
    held.mkdir(parents=True)
    (held / store.MODEL_META).write_text("{}")  # the plan only looks whether the model is there
    raw = {"study": {"dataset": "digits"}, "attacks": [{"source": "held", "method": "fgsm", "eps": "8/255"}],
           "matrix": {}}
    steps = suites.plan(suites.suite_from_dict(raw, tmp_path))
    assert edges(steps) == {"attack held-fgsm-eps8": set(), steps[-1].label: {"attack held-fgsm-eps8"}}


def test_a_cycle_is_one_line_naming_it():
    steps = [suites.Step("train", "a", {}), suites.Step("attack", "b", {}, deps=["train a", "matrix c"]),
             suites.Step("matrix", "c", {}, deps=["attack b"])]
    with pytest.raises(RobenchError) as info:
        suites.order(steps, "s.toml")
    assert str(info.value) == "s.toml: the steps depend on each other in a cycle: attack b -> matrix c -> attack b"
    with pytest.raises(RobenchError, match="depends on train x, which no step makes"):
        suites.order([suites.Step("attack", "b", {}, deps=["train x"])])
    assert [s.label for s in suites.order(steps[:1] + [suites.Step("x", "y", {}, deps=["train a"])])] == \
        ["train a", "x y"]


BROKEN = [
    ('[study]\ndataset = "digits"\n[[models]]\narch = "tiny"\n[[attacks]]\nsource = "tiny-sed1"\nmethod = "fgsm"\n',
     "[[attacks]] #1: set tiny-sed1-fgsm-eps16: source 'tiny-sed1' is made by no [[models]] or [[imports]] entry and "
     "is not in workspace"),
    ('[study]\ndataset = "digits"\n[[models]]\narch = "tiny"\n[[scores]]\nkind = "tradeoff"\nset = "tiny-pgd"\n',
     "[[scores]] #1: set 'tiny-pgd' is made by no [[attacks]] entry and is not in workspace"),
    ('[study]\ndataset = "digits"\ndata_dir = "/no/such/folder"\n[[models]]\narch = "tiny"\n',
     "data_dir /no/such/folder does not exist"),
    ('[study]\ndataset = "digits"\n[[models]]\narch = "tiny"\n[[scores]]\nkind = "folder"\n'
     'data_dir = "/no/such/stylized"\n', "[[scores]] #1: data_dir /no/such/stylized does not exist"),
    ('[study]\ndataset = "digits"\n[[models]]\narch = "tiny"\n[matrix]\nout = "/etc/hostname/m.csv"\n',
     "cannot write to /etc/hostname: /etc/hostname is not a folder; choose another out or plot path"),
    ('[study]\ndataset = "digits"\n[[models]]\narch = "tiny"\n[matrix]\nplot = "/tmp"\n',
     "cannot write a result to /tmp: it is a folder; give a file name"),
]


@pytest.mark.parametrize("text,message", BROKEN,
                         ids=["missing-source", "missing-set", "missing-data-dir", "missing-score-dir",
                              "out-under-a-file", "plot-is-a-folder"])
@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "run"])
def test_a_broken_graph_is_one_line_before_anything_runs(tmp_path, text, message, dry_run):
    path = tmp_path / "s.toml"
    path.write_text(text)
    ws = tmp_path / "ws"
    r = CliRunner().invoke(app, ["run", str(path), "-w", str(ws), "--device", "cpu"] + (["--dry-run"] if dry_run
                                                                                          else []))
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 1 and len(lines) == 1 and lines[0].startswith(f"error: {path}: "), r.output
    assert message in lines[0], lines[0]
    assert not ws.exists()  # nothing trained, nothing written


FAILING = """
[study]
name = "failing"
dataset = "digits"

[train]
preset = "quick"
epochs = 1
width = 8

[[models]]
arch = "tiny"
seed = [0, 1]

[attack]
method = "fgsm"
eps = "8/255"
n = 32

[[attacks]]
source = "tiny"

[[attacks]]
source = "tiny-seed1"
target = "99"          # accepted by the schema; digits has classes 0-9, so the attack refuses it when it runs

[matrix]
sets = "tiny-seed1-*"  # reads the failing set only
out = "m.csv"

[[scores]]
kind = "noise"          # reads models only: independent of the failure
sigmas = [0.1]
n = 16
common = false
out = "noise.csv"
"""


def test_a_failing_step_fails_only_its_dependents_and_the_run_reports_it(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(FAILING)
    ws = tmp_path / "ws"
    report = suites.run(suites.load_suite(path, ws), device="cpu")
    status = {r.step.name: r.status for r in report.steps}
    assert status == {"tiny": "done", "tiny-seed1": "done", "tiny-fgsm-eps8-n32": "done", "noise.csv": "done",
                      "tiny-seed1-fgsm-eps8-targeted-99-n32": "failed", "m.csv": "not run"}
    failed = next(r for r in report.steps if r.status == "failed")
    assert failed.error == "--target 99 is out of range: the source's dataset has classes 0 to 9"
    assert next(r for r in report.steps if r.status == "not run").after == "attack tiny-seed1-fgsm-eps8-targeted-99-n32"
    assert not report.ok and len(report.failed) == 2 and set(report.results) == {
        "train tiny", "train tiny-seed1", "attack tiny-fgsm-eps8-n32", "score:noise noise.csv"}
    assert store.list_set_names(ws) == ["tiny-fgsm-eps8-n32"] and (ws / "results" / "noise.csv").exists()
    assert not (ws / "results" / "m.csv").exists()
    log = (ws / "logs" / "attack-tiny-seed1-fgsm-eps8-targeted-99-n32.log").read_text()
    assert "Traceback" in log and "--target 99 is out of range" in log  # the traceback goes to the step's log
    assert "saved tiny" in (ws / "logs" / "train-tiny.log").read_text()

    r = CliRunner().invoke(app, ["run", str(path), "-w", str(ws), "--device", "cpu"])  # again: the rest is skipped
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert r.stderr.count("│ skipped") == 4 and "│ not run" in r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        "error: 1 step(s) failed (attack tiny-seed1-fgsm-eps8-targeted-99-n32: --target 99 is out of range: the "
        "source's dataset has classes 0 to 9), 1 more not run; fix it and run again: finished steps are skipped")


def test_the_executor_comes_from_the_suite_and_the_command_line_wins(tmp_path):
    from robench.suites.ray import RayExecutor

    raw = {"study": {"dataset": "digits"}, "executor": {"name": "ray", "gpus_per_train": 0.25, "cpus_per_step": 2,
                                                        "matrix_shards": 3}}
    suite = suites.suite_from_dict(raw, tmp_path)
    chosen = suites.executor_for(suite, gpus_per_train=0.5, gpus_per_attack=None, address="auto")
    assert isinstance(chosen, RayExecutor) and chosen.address == "auto" and chosen.matrix_shards == 3
    assert chosen.resources.cpus == 2 and chosen.resources.gpus == {"train": 0.5}
    assert chosen.resources.of(suites.Step("score:noise", "x", {})) == (2, 0.0)  # nothing Ray-side started yet
    assert isinstance(suites.executor_for(suite, "sequential"), suites.Sequential)
    assert isinstance(suites.executor_for(suites.suite_from_dict({}, tmp_path)), suites.Sequential)
    with pytest.raises(RobenchError, match="gpus-per-train must be 0 or more, got -1"):
        suites.executor_for(suite, gpus_per_train=-1)
    with pytest.raises(RobenchError, match="unknown executor 'slurm'; use sequential or ray"):
        suites.executor_for(suite, "slurm")
    with pytest.raises(RobenchError, match=r"\[executor\]: unknown key 'gpus_per_trian'; did you mean gpus_per_train"):
        suites.suite_from_dict({"executor": {"gpus_per_trian": 1}}, tmp_path)


def test_the_live_table_shows_each_step_where_it_runs_and_its_progress(tmp_path):
    from rich.console import Console

    from robench.cli.suite import StepTable

    raw = {"study": {"dataset": "digits"}, "models": [{"arch": "tiny", "seed": [0, 1]}],
           "attacks": [{"source": "tiny-seed1", "method": "fgsm"}]}
    steps = suites.plan(suites.suite_from_dict(raw, tmp_path))
    live = StepTable(steps)
    reports = [suites.StepReport(s) for s in steps]
    live.on_step(suites.StepReport(steps[0], "done", where="node1 gpu 0", seconds=12.0))
    live.on_step(suites.StepReport(steps[1], "running", where="node2 gpu 3"))
    live("start", {"total": 46, "done": 0})
    live("batch", {"total": 46, "done": 23, "info": "loss 1.2"})
    live.on_step(suites.StepReport(steps[2], "not run", after="train tiny-seed1"))
    console = Console(record=True, width=160)
    console.print(live)
    text = console.export_text()
    assert [line.split()[:4] for line in text.splitlines()[1:]] == [
        ["1", "train", "tiny", "done"], ["2", "train", "tiny-seed1", "running"],
        ["3", "attack", reports[2].step.name, "not"]]
    assert "node1 gpu 0" in text and "12s" in text and "node2 gpu 3" in text and "23/46 loss 1.2" in text
    assert "after train tiny-seed1 failed" in text


class LateReports(suites.Executor):
    """Finishes each step at once without running it, and says where it ran only afterwards, at the next collect
    (as a Ray task's unawaited report can arrive after its outcome)."""

    name = "late"

    def start(self, suite, device, on_progress=None):
        super().start(suite, device, on_progress)
        self.queue, self.late = [], []

    def submit(self, step):
        self.queue.append(step)

    def collect(self):
        for label in self.late:
            self.on_progress(label, "running", {"where": "late"})
        step = self.queue.pop(0)
        self.late = [step.label]
        return [suites.Outcome(step.label, "done", where="there", seconds=0.0)]


def test_a_late_running_report_does_not_reopen_a_finished_step(tmp_path):
    seen: dict[str, list[str]] = {}
    suite = suites.load_suite(SUITES / "table4.toml", tmp_path)
    report = suites.run(suite, executor=LateReports(), on_step=lambda r: seen.setdefault(r.step.label, []).append(
        r.status))
    assert report.ok and {r.status for r in report.steps} == {"done"}
    assert all(r.where == "there" for r in report.steps)
    for statuses in seen.values():  # waiting (submitted), running (made up from the outcome), done; never after
        assert statuses[-2:] == ["running", "done"] and statuses.count("running") == 1, statuses
