"""Many writers, one workspace: threads and processes writing sets, models and cached predictions at once lose
nothing and corrupt nothing; readers never see a half-written item; one name has one writer at a time."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from robench import store
from robench.errors import RobenchError
from robench.models import create_model
from robench.records import DatasetRef, ModelRecord, SetRecord

REF = DatasetRef("digits", num_classes=10, in_channels=1, input_size=8)
SETS_EACH = 3


def write_set(ws: str, name: str, value: int, batches: int = 3) -> None:
    """A set whose labels all equal ``value`` (so a mix-up between writers shows), written in ``batches``."""
    with store.SetWriter(store.set_dir(name, ws)) as writer:
        for _ in range(batches):
            x = torch.full((4, 1, 8, 8), value / 100)
            y = torch.full((4,), value, dtype=torch.long)
            writer.add({"adv": x, "clean": x, "labels": y, "source_pred": y, "indices": y, "l2": x[:, 0, 0, 0],
                        "linf": x[:, 0, 0, 0]})
        writer.finish(SetRecord(name, [], REF, "test", "torch", {}))


def writer_job(ws: str, worker: int) -> list[str]:
    """One writer: its sets, its model, and the cached predictions every writer shares (same file, same data)."""
    torch.set_num_threads(1)
    names = [f"w{worker}-s{i}" for i in range(SETS_EACH)]
    for i, name in enumerate(names):
        write_set(ws, name, worker * 10 + i)
    model = create_model("tiny", num_classes=10, in_channels=1, input_size=8, width=4)
    torch.manual_seed(worker)
    for p in model.parameters():
        p.data.normal_()
    name = f"m{worker}"
    store.save_model(model.state_dict(), ModelRecord(name, model.config, REF), store.model_dir(name, ws))
    store.write_tensors(Path(ws) / "cache" / "predictions" / "shared.safetensors", {"pred": torch.arange(1000)})
    return names


def check_everything(ws: str, workers: int) -> None:
    expected = {f"w{w}-s{i}": w * 10 + i for w in range(workers) for i in range(SETS_EACH)}
    assert store.list_set_names(ws) == sorted(expected)  # nothing lost, no staging folder listed
    for name, value in expected.items():
        loaded = store.load_set(name, ws)
        assert len(loaded) == 12 and (loaded.labels == value).all()  # whole, and its own writer's data
    assert store.list_model_names(ws) == [f"m{w}" for w in range(workers)]
    for w in range(workers):
        state = store.read_weights(store.read_model(f"m{w}", ws))  # the hash in model.json matches the weights
        assert state
    pred = store.read_tensors(Path(ws) / "cache" / "predictions" / "shared.safetensors")["pred"]
    assert torch.equal(pred, torch.arange(1000))
    leftovers = [p.name for p in Path(ws, "sets").iterdir() if p.name.startswith(".") and not p.name.endswith(".lock")]
    assert not leftovers  # no staging folder left behind


def test_concurrent_threads_lose_nothing_and_readers_never_see_half_an_item(ws):
    workers, stop, seen, problems = 6, threading.Event(), set(), []

    def reader() -> None:
        while not stop.is_set():
            try:
                for name in store.list_set_names(ws):
                    store.load_set(name, ws)
                    seen.add(name)
                store.list_model_records(ws)
            except Exception as err:  # noqa: BLE001  (any reader failure is the test's failure)
                problems.append(err)

    watcher = threading.Thread(target=reader)
    watcher.start()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda w: writer_job(ws, w), range(workers)))
    stop.set()
    watcher.join()
    assert not problems, problems[:3]
    check_everything(ws, workers)


def test_concurrent_processes_lose_nothing(ws):
    workers = 4
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        list(pool.map(writer_job, [ws] * workers, range(workers)))
    check_everything(ws, workers)


def test_one_set_name_has_one_writer_at_a_time(ws):
    """Writers of one name at once: the first makes it, the others fail at once (with --overwrite too)."""
    n = 4
    started, tried, outcomes = threading.Barrier(n), threading.Barrier(n), []

    def attempt(i: int) -> None:
        started.wait()
        try:
            writer = store.SetWriter(store.set_dir("same", ws), overwrite=i % 2 == 1)
        except RobenchError as err:
            tried.wait()
            outcomes.append(str(err))
            return
        tried.wait()  # every other writer has tried while this one holds the name
        with writer:
            x = torch.zeros(2, 1, 8, 8)
            y = torch.full((2,), i)
            writer.add({"adv": x, "clean": x, "labels": y, "source_pred": y, "indices": y, "l2": y.float(),
                        "linf": y.float()})
            writer.finish(SetRecord("same", [], REF, "test", "torch", {}))
        outcomes.append(f"made by {i}")

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    made = [o for o in outcomes if o.startswith("made by")]
    assert len(made) == 1 and len(outcomes) == n
    assert all("already exists" in o and "another process is making it now" in o for o in outcomes if o not in made)
    winner = int(made[0].split()[-1])
    assert (store.load_set("same", ws).labels == winner).all()
    with pytest.raises(RobenchError, match="already exists in .*; pass --overwrite"):
        store.SetWriter(store.set_dir("same", ws))
    write_set(ws, "other", 7)  # the claim was released: the name's writer is gone
    store.SetWriter(store.set_dir("same", ws), overwrite=True).abort()


def test_replacing_a_set_never_shows_readers_a_missing_or_partial_one(ws):
    write_set(ws, "s", 1)
    stop, problems = threading.Event(), []

    def reader() -> None:
        while not stop.is_set():
            try:
                assert set(store.load_set("s", ws).labels.tolist()) <= {1, 2, 3, 4, 5}
            except Exception as err:  # noqa: BLE001
                problems.append(err)

    watcher = threading.Thread(target=reader)
    watcher.start()
    for value in (2, 3, 4, 5):
        with store.SetWriter(store.set_dir("s", ws), overwrite=True) as writer:
            y = torch.full((4,), value)
            x = torch.zeros(4, 1, 8, 8)
            writer.add({"adv": x, "clean": x, "labels": y, "source_pred": y, "indices": y, "l2": y.float(),
                        "linf": y.float()})
            writer.finish(SetRecord("s", [], REF, "test", "torch", {}))
    stop.set()
    watcher.join()
    assert not problems, problems[:3]
    assert (store.load_set("s", ws).labels == 5).all()


def test_two_attacks_of_one_name_at_once_the_second_fails(tmp_path, trained_ws):
    """Two `robench attack --name same` into one workspace at once: one saves, the other says it exists."""
    ws = tmp_path / "ws"
    shutil.copytree(Path(trained_ws) / "models", ws / "models")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(store.__file__).parents[1]),
                                                        os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "robench.cli", "attack", "--source", "tiny", "--method", "pgd", "--steps", "10",
               "--n", "200", "--name", "same", "-w", str(ws), "--device", "cpu"]
    runs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    results = [(p.wait(), p.stderr.read()) for p in runs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1], results
    failed = next(text for code, text in results if code == 1)
    assert "error: set 'same' already exists" in failed and "Traceback" not in failed, failed
    record = store.read_set("same", ws)
    assert len(store.load_set("same", ws)) == record.n > 0 and store.list_set_names(ws) == ["same"]


def test_one_model_name_trains_in_one_process_at_a_time(ws):
    import robench

    with store.claim(store.model_dir("tiny", ws)):  # as a training process holds it
        with pytest.raises(RobenchError, match="model 'tiny' is being trained by another process in .* now; wait"):
            robench.train("tiny", dataset="digits", workspace=ws, preset="quick", epochs=1, device="cpu")
    assert not store.list_model_names(ws)
