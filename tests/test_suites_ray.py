"""The Ray executor on a local Ray (2 CPUs): the same files as the sequential runner, a matrix split into shards
and joined, a failing step, and a driver killed mid-run that resumes to the same result."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
import torch

from robench import store, suites
from robench.suites.execute import finish_matrix, matrix_part
from robench.suites.ray import RayExecutor, Resources

ray = pytest.importorskip("ray")  # in the test extra; a plain `pip install robench` runs without it

SUITE = """
[study]
name = "ray-study"
dataset = "digits"

[train]
preset = "quick"
epochs = 1
width = 8

[[models]]
arch = "tiny"
keep = [1.0, 0.5]

[[models]]
arch = "tiny"
seed = 1

[[attacks]]
source = "tiny-seed1"
method = "fgsm"
eps = "16/255"
n = 48

[matrix]
out = "m.csv"
"""
MODELS = ["tiny", "tiny-keep0.5-bottom", "tiny-seed1"]


def suite_in(tmp: Path, ws: Path, text: str = SUITE) -> suites.Suite:
    path = tmp / "s.toml"
    path.write_text(text)
    return suites.load_suite(path, ws)


def files(ws: Path) -> dict[str, bytes]:
    """Every model's weights and every set's shards and records, and the results, by path in the workspace."""
    chosen = [*ws.glob("models/*/model.safetensors"), *ws.glob("sets/*/*.safetensors"), *ws.glob("results/*")]
    return {str(p.relative_to(ws)): p.read_bytes() for p in sorted(chosen)}


@pytest.fixture(scope="module")
def sequential_ws(tmp_path_factory) -> Path:
    """The suite run by the sequential runner, torch on one thread (as each 1-CPU Ray task)."""
    tmp = tmp_path_factory.mktemp("sequential")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        report = suites.run(suite_in(tmp, tmp / "ws"), device="cpu")
    finally:
        torch.set_num_threads(threads)
    assert report.ok
    return tmp / "ws"


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray for this module's tests (the executor joins it and leaves it running)."""
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.slow  # ~30-70 s: a second Python with its own Ray; resume itself is covered by faster tests
def test_a_killed_driver_resumes_to_the_uninterrupted_result(tmp_path, sequential_ws, ray_session):
    """SIGKILL `robench run --executor ray` once its first step is saved; the next run skips what was finished."""
    suite = suite_in(tmp_path, tmp_path / "ws")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(suites.__file__).parents[2]),
                                                        os.environ.get("PYTHONPATH", "")])}
    driver = subprocess.Popen([sys.executable, "-m", "robench.cli", "run", suite.source, "-w", str(suite.workspace),
                               "--executor", "ray", "--num-cpus", "2", "--device", "cpu"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while not store.list_model_names(suite.workspace) and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    finished = set(store.list_model_names(suite.workspace))
    assert finished and not (suite.workspace / "results" / "m.csv").exists(), driver.stderr.read().decode()

    report = suites.run(suite, device="cpu", executor=RayExecutor())
    assert report.ok, [(r.step.label, r.status, r.error) for r in report.steps]
    assert {r.step.name for r in report.steps if r.status == "skipped"} >= finished
    assert {r.step.name for r in report.steps if r.status == "done"} >= {"m.csv"}
    assert files(suite.workspace) == files(sequential_ws)


def test_ray_makes_the_same_files_as_the_sequential_runner(tmp_path, sequential_ws, ray_session):
    suite = suite_in(tmp_path, tmp_path / "ws")
    seen = []
    report = suites.run(suite, device="cpu", executor=RayExecutor(matrix_shards=2), on_step=lambda r: seen.append(
        (r.step.label, r.status)))
    assert report.ok and [r.status for r in report.steps] == ["done"] * 5
    assert files(suite.workspace) == files(sequential_ws)  # same weights, same sets, byte-identical matrix CSV
    kinds = [name.split("/")[0] for name in files(sequential_ws)]  # the comparison covers every model, the set
    assert kinds.count("models") == 3 and "sets" in kinds and "results" in kinds  # and the CSV
    for model in MODELS:
        assert store.read_model(model, suite.workspace).weights_sha256 == \
            store.read_model(model, sequential_ws).weights_sha256
    matrix = report.steps[-1]
    assert matrix.where == "2 shards" and isinstance(report.results[matrix.step.label], pd.DataFrame)
    assert seen.index(("matrix m.csv", "running")) > seen.index(("attack tiny-seed1-fgsm-eps16-n48", "done"))
    assert {label for label, status in seen if status == "running"} == {r.step.label for r in report.steps}
    logs = sorted(p.name for p in (suite.workspace / "logs").glob("*.log"))
    assert logs == ["attack-tiny-seed1-fgsm-eps16-n48.log", "matrix-m.csv.log", "train-tiny-keep0.5-bottom.log",
                    "train-tiny-seed1.log", "train-tiny.log"]
    assert "shard 2/2" in (suite.workspace / "logs" / "matrix-m.csv.log").read_text()
    assert most_at_once(suite.workspace / "logs") == 2  # the 3 trainings on 2 CPUs: never a third beside them


def test_ray_runs_no_more_steps_at_once_than_the_cpus_allow(tmp_path, ray_session):
    """Two trainings asking for both CPUs run one after the other: a task reporting where it runs must not give its
    CPUs back to Ray's scheduler meanwhile (a blocking ray.get in a task does), or a second starts beside it."""
    text = SUITE.split("[[attacks]]")[0].replace('keep = [1.0, 0.5]', 'keep = 1.0')
    suite = suite_in(tmp_path, tmp_path / "ws", text)
    report = suites.run(suite, device="cpu", executor=RayExecutor(resources=Resources(cpus=2)))
    assert report.ok and len(report.steps) == 2
    assert most_at_once(suite.workspace / "logs") == 1


def most_at_once(logs: Path) -> int:
    """The most steps that ran at the same time, from the 'started on' and 'done in' lines of their logs."""
    events = []
    for path in logs.glob("*.log"):
        for line in path.read_text().splitlines():
            stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
            if ": started on " in line:
                events.append((stamp, 1))
            elif re.search(r": (done|failed|skipped) in ", line):
                events.append((stamp, -1))
    running = [0]
    for _, change in sorted(events):  # at a tie the end (-1) sorts first: a step that ends as the next begins
        running.append(running[-1] + change)
    return max(running)


@pytest.mark.parametrize("n", [2, 3, 5])
def test_matrix_shards_join_into_the_single_process_frame(sequential_ws, n):
    suite = suites.load_suite(sequential_ws.parent / "s.toml", sequential_ws)
    step = suites.plan(suite)[-1]
    whole = pd.read_csv(sequential_ws / "results" / "m.csv")
    parts = [matrix_part(suite, step, (i, n), device="cpu") for i in range(1, n + 1)]
    assert sum(len(p) for p in parts) == len(whole) and sum(len(p) > 0 for p in parts) == min(n, len(MODELS))
    joined = finish_matrix(suite, step, parts)  # rewrites m.csv from the shards
    pd.testing.assert_frame_equal(joined.reset_index(drop=True), matrix_part(suite, step, None, device="cpu"))
    assert pd.read_csv(sequential_ws / "results" / "m.csv").equals(whole)


FAILING = """
[study]
dataset = "digits"

[attack]
method = "fgsm"
eps = "8/255"

[[attacks]]
source = "tiny"
n = 32

[[attacks]]
source = "tiny-seed1"
n = 32
target = "99"  # digits has classes 0-9: refused when the attack runs

[matrix]
sets = "tiny-seed1-*"
out = "m.csv"
"""


def test_ray_a_failing_step_fails_only_its_dependents(tmp_path, sequential_ws, ray_session):
    ws = tmp_path / "ws"
    shutil.copytree(sequential_ws / "models", ws / "models")  # sources held: the attacks depend on nothing
    suite = suite_in(tmp_path, ws, FAILING)
    resources = Resources(cpus=1, gpus={"attack": 0})
    report = suites.run(suite, device="cpu", executor=RayExecutor(resources=resources))
    assert [(r.step.name, r.status) for r in report.steps] == [
        ("tiny-fgsm-eps8-n32", "done"), ("tiny-seed1-fgsm-eps8-targeted-99-n32", "failed"), ("m.csv", "not run")]
    assert report.steps[1].error == "--target 99 is out of range: the source's dataset has classes 0 to 9"
    assert report.steps[2].after == "attack tiny-seed1-fgsm-eps8-targeted-99-n32"
    assert store.list_set_names(ws) == ["tiny-fgsm-eps8-n32"] and ray.is_initialized()
    assert "Traceback" in (ws / "logs" / "attack-tiny-seed1-fgsm-eps8-targeted-99-n32.log").read_text()
