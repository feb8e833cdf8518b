"""Typed records and dataset references: round trips, migration of robench 0.1 workspaces, moved data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from test_matrix import save_untrained

import robench
from robench import store
from robench.datasets import load_dataset, resolve_dataset
from robench.errors import RobenchError
from robench.records import DatasetRef, ModelRecord, Origin, SetRecord, SourceRef

V01 = Path(__file__).parent / "data" / "workspace-0.1"  # written by robench 0.1 (before typed records)


@pytest.fixture
def v01(tmp_path) -> Path:
    ws = tmp_path / "old"
    shutil.copytree(V01, ws)
    return ws


def test_records_round_trip_through_json():
    ref = DatasetRef("folder", 3, 1, 32, 10, 5, root="/data/x", fingerprint="ab" * 32, classes=("a", "b", "c"),
                     options={"image_size": 32})
    model = ModelRecord("m", {"name": "tiny", "keep": 0.3}, ref, "f" * 64, Origin("import", "torchvision:x"),
                        seed=1, recipe={"epochs": 2}, history=[{"epoch": 1}], precision="bf16")
    assert ModelRecord.from_json(json.loads(json.dumps(model.to_json()))) == model
    s = SetRecord("s", [SourceRef.of(model)], ref, "pgd", "foolbox", {"eps": 0.1}, n=3, attempted=4,
                  success_rate=0.75, stats={"queries": {"median": 10}})
    assert SetRecord.from_json(json.loads(json.dumps(s.to_json()))) == s
    assert s.to_json()["schema"] == 1 and s.to_json()["sources"][0]["arch"] == "tiny"
    assert ref.label == "folder:x" and ref.shape == (1, 32, 32)


def test_a_robench_01_workspace_loads_and_scores(v01, tmp_path):
    rec = store.read_model("tiny", v01)
    assert rec.dataset.name == "digits" and rec.dataset.fingerprint is None and rec.origin.kind == "train"
    assert rec.arch == "tiny" and rec.epochs == 1 and rec.weights_sha256
    model = robench.load_model("tiny", v01)
    assert model(torch.rand(2, 1, 32, 32)).shape == (2, 10)
    s = robench.load_set("tiny-fgsm-eps8-n8", v01)
    assert s.record.sources[0].weights_sha256 == rec.weights_sha256 and len(s) == s.record.n > 0
    save_untrained(str(v01), "new", width=4)  # a model recorded now, with a fingerprinted reference to the same data
    df = robench.matrix(v01, device="cpu")
    assert set(zip(df.target, df.relation, strict=True)) == {("tiny", "white-box"), ("new", "gray-box")}
    assert int(df[df.target == "tiny"].n.iloc[0]) == len(s) and df.attrs["skipped"] == []


def test_a_robench_01_folder_reference_migrates():
    ref = DatasetRef.from_v0({"dataset": "folder:/abs/tree", "num_classes": 3, "in_channels": 1,
                              "input_size": 32, "n_train": 9, "n_test": 3})
    assert (ref.name, ref.root, ref.fingerprint, ref.num_classes) == ("folder", "/abs/tree", None, 3)


def test_a_record_from_a_newer_robench_is_a_clear_error(v01):
    path = v01 / "models" / "tiny" / "model.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "schema": 99}))
    with pytest.raises(RobenchError, match="newer robench.*upgrade"):
        store.read_model("tiny", v01)


def test_a_corrupt_record_is_a_clear_error(v01):
    path = v01 / "sets" / "tiny-fgsm-eps8-n8" / "set.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "schema": 1, "sources": [{"bad": 1}]}))
    with pytest.raises(RobenchError, match="corrupt set record"):
        robench.load_set("tiny-fgsm-eps8-n8", v01)


# ---------------------------------------------------------------- the dataset reference


def test_every_dataset_records_a_fingerprint(digits_png):
    digits = load_dataset("digits")
    assert digits.ref.fingerprint == load_dataset("digits").ref.fingerprint
    assert digits.ref.classes == tuple(str(i) for i in range(10)) and digits.ref.root is None
    tree = load_dataset("folder", digits_png)
    assert tree.ref.root == str(digits_png.resolve()) and tree.ref.name == "folder"
    assert tree.ref.fingerprint != digits.ref.fingerprint and tree.ref.classes == tuple(str(i) for i in range(10))
    assert resolve_dataset(tree.ref).ref == tree.ref


def moved_folder_workspace(digits_png: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Train on a copy of the PNG tree, then move the workspace and the data elsewhere."""
    data, ws = tmp_path / "a" / "digits-png", tmp_path / "a" / "ws"
    shutil.copytree(digits_png, data)
    robench.train("tiny", dataset="folder", data_dir=data, workspace=ws, preset="quick", epochs=1, width=4,
                  device="cpu")
    robench.attack("tiny", "fgsm", n=16, workspace=ws, device="cpu")
    new_data, new_ws = tmp_path / "b" / "elsewhere" / "digits-png", tmp_path / "b" / "ws"
    new_data.parent.mkdir(parents=True)
    shutil.move(data, new_data)
    shutil.move(ws, new_ws)
    return new_ws, new_data


def test_a_moved_workspace_finds_moved_data_by_data_dir(digits_png, tmp_path, monkeypatch):
    monkeypatch.delenv("ROBENCH_DATA", raising=False)
    ws, data = moved_folder_workspace(digits_png, tmp_path)
    with pytest.raises(RobenchError, match=r"recorded at .*/a/digits-png is not there.*pass --data-dir"):
        robench.matrix(ws, device="cpu")
    df = robench.matrix(ws, device="cpu", data_dir=data)
    assert len(df) == 1 and df.relation[0] == "white-box" and df.n[0] > 0
    assert len(robench.matrix(ws, device="cpu", data_dir=data.parent)) == 1  # a folder holding the tree by name
    monkeypatch.setenv("ROBENCH_DATA", str(data))
    assert len(robench.matrix(ws, device="cpu", use_cache=False)) == 1


def test_other_data_at_the_location_is_refused_naming_both(digits_png, tmp_path, monkeypatch):
    monkeypatch.delenv("ROBENCH_DATA", raising=False)
    ws, data = moved_folder_workspace(digits_png, tmp_path)
    victim = next((data / "test" / "3").iterdir())
    victim.rename(victim.with_name("renamed.png"))  # one test file differs: another dataset
    with pytest.raises(RobenchError) as info:
        robench.matrix(ws, device="cpu", data_dir=data)
    message = str(info.value)
    assert str(data) in message and str(tmp_path / "a" / "digits-png") in message and "fingerprint" in message
    assert "\n" not in message


# ---------------------------------------------------------------- training records


def test_resume_reads_its_settings_from_the_checkpoint_record(ws):
    kw = dict(dataset="digits", workspace=ws, preset="quick", device="cpu", seed=3, width=4)
    robench.train("tiny", name="full", keep=0.5, epochs=2, **kw)

    def stop(kind, payload):
        if kind == "epoch" and payload["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        robench.train("tiny", name="cut", keep=0.5, epochs=2, callback=stop, **kw)
    # resumed with other options: the checkpoint's record decides (keep 0.5, 2 epochs)
    rec = robench.train("tiny", name="cut", keep=0.9, epochs=5, resume=True, **kw)
    assert rec.config["keep"] == 0.5 and rec.epochs == 2
    full, cut = (store.read_tensors(Path(ws) / "models" / n / "model.safetensors") for n in ("full", "cut"))
    assert all(torch.equal(full[k], cut[k]) for k in full)


def test_train_leaves_the_callers_random_state_alone(ws):
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    robench.train("tiny", dataset="digits", workspace=ws, preset="quick", epochs=1, width=4, device="cpu")
    assert torch.equal(torch.random.get_rng_state(), before)
