"""Typed records and dataset references: round trips, migration of schema-1 and robench 0.1 workspaces, moved
data."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from test_cli_matrix import run
from test_matrix import save_untrained

import robench
from robench import records, store
from robench.datasets import load_dataset, resolve_dataset
from robench.errors import RobenchError
from robench.records import (
    AttackParams,
    DatasetRef,
    DefectSpec,
    Epoch,
    ImportDetails,
    ModelConfig,
    ModelRecord,
    Origin,
    QueryStats,
    Recipe,
    SetRecord,
    SetStats,
    SourceRef,
    TrainingHistory,
)

V01 = Path(__file__).parent / "data" / "workspace-0.1"  # written by robench 0.1 (before typed records)
V1 = Path(__file__).parent / "data" / "workspace-schema1"  # schema 1 (data/make_workspace_schema1.py)
V1_MATRIX = Path(__file__).parent / "data" / "workspace-schema1-matrix.csv"  # its matrix, scored by that robench


@pytest.fixture
def v01(tmp_path) -> Path:
    ws = tmp_path / "old"
    shutil.copytree(V01, ws)
    return ws


def test_records_round_trip_through_json():
    ref = DatasetRef("folder", 3, 1, 32, 10, 5, root="/data/x", fingerprint="ab" * 32, classes=("a", "b", "c"),
                     options={"image_size": 32})
    config = ModelConfig.of("tiny", num_classes=3, in_channels=1, input_size=32, width=4, keep=0.3, strides=[2, 1])
    model = ModelRecord("m", config, ref, "f" * 64, Origin("import", "torchvision:x", ImportDetails(form="x")),
                        seed=1, recipe=Recipe(epochs=2), history=TrainingHistory((Epoch(1, 2.3, 0.1),)),
                        precision="bf16")
    assert ModelRecord.from_json(json.loads(json.dumps(model.to_json()))) == model
    s = SetRecord("s", [SourceRef.of(model)], ref, "pgd", "foolbox", {"eps": 0.1}, n=3, attempted=4,
                  success_rate=0.75, stats={"queries": {"over": "kept examples", "n": 3, "budget": 20, "median": 10}})
    assert SetRecord.from_json(json.loads(json.dumps(s.to_json()))) == s
    assert s.to_json()["schema"] == 2 and s.to_json()["sources"][0]["arch"] == "tiny"
    assert ref.label == "folder:x" and ref.shape == (1, 32, 32)
    assert s.params == {"eps": 0.1} and isinstance(s.params, AttackParams) and s.params.eps == 0.1
    assert s.stats == SetStats(queries=QueryStats("kept examples", 3, 20, median=10))
    assert config.defect == DefectSpec(keep=0.3) and config.strides == (2, 1) and not config.is_standard


# ---------------------------------------------------------------- migration of schema 1


@pytest.fixture
def v1(tmp_path) -> Path:
    ws = tmp_path / "schema1"
    shutil.copytree(V1, ws)
    return ws


def _raw(path: Path) -> dict:
    return json.loads(path.read_text())


def _common(record, raw: dict, skip: set[str]) -> None:
    """Every top-level field of a record equals what schema 1 wrote, but those in ``skip`` (checked by the caller)."""
    for f in record.to_json():
        if f not in skip | {"schema", "kind"}:
            assert getattr(record, f) == raw[f], f


def test_a_schema_1_workspace_loads_with_equal_values(v1):
    """Each record of a workspace written by the robench before schema 2 reads back as typed records that hold every
    value it wrote: the flat config, the recipe, the history, the import details, the set parameters and stats."""
    for path in sorted(v1.glob("models/*/model.json")):
        raw, rec = _raw(path), records.read_model_record(path.parent)
        assert raw["schema"] == 1 and rec.schema == 2 and rec.config.flat() == raw["config"]
        assert rec.dataset.to_json() == raw["dataset"] and rec.history.to_json() == raw["history"]
        assert (rec.recipe.to_json() if rec.recipe else None) == raw["recipe"]
        assert (rec.origin.kind, rec.origin.spec) == (raw["origin"]["kind"], raw["origin"]["spec"])
        assert rec.origin.details.to_json() == {k: v for k, v in raw["origin"]["details"].items() if v is not None}
        _common(rec, raw, {"config", "dataset", "history", "recipe", "origin"})
    tiny, scripted = store.read_model("tiny-keep0.5-bottom", v1), store.read_model("scripted", v1)
    assert tiny.config.defect == DefectSpec(keep=0.5) and tiny.config.width == 4 and not tiny.config.is_standard
    assert tiny.history[0].epoch == 1 and tiny.recipe.epochs == 1 and tiny.recipe.milestones == []
    assert scripted.config.defect is None and scripted.config.is_standard and scripted.recipe is None
    assert scripted.config.extra == {"program_sha256": scripted.origin.details.program_sha256}
    assert scripted.origin.details.mean == [0.5] and scripted.origin.details.form == "torchscript"
    for path in sorted(v1.glob("sets/*/set.json")):
        raw, rec = _raw(path), records.read_set_record(path.parent)
        assert rec.params == raw["params"] and rec.stats.to_json() == raw["stats"]
        assert [s.config.flat() for s in rec.sources] == [s["config"] for s in raw["sources"]]
        assert [s.to_json()["arch"] for s in rec.sources] == [s["arch"] for s in raw["sources"]]
        _common(rec, raw, {"dataset", "sources", "params", "stats"})
    boundary = store.read_set("tiny-boundary-steps200-dirs20-n3", v1)
    assert boundary.stats.trace.steps == [100, 200] and boundary.stats.steps_used.cap == 200
    assert boundary.params.tolerance == 0.05 and not boundary.params.linf
    assert store.read_set("tiny-square-eps16-q20-n4", v1).stats.queries.budget == 20


def test_a_schema_1_workspace_lists_and_scores_as_before(v1):
    """`robench models`, `sets` and `matrix` work on it, and the matrix equals the one the earlier robench scored
    (relations by family, counts, rates and the configuration columns)."""
    for command in ("models", "sets"):
        r = run(command, "-w", v1, "--format", "csv")
        assert r.exit_code == 0, r.output
        assert len(pd.read_csv(io.StringIO(r.stdout))) == 3
    r = run("matrix", "-w", v1, "--device", "cpu", "--out", v1 / "m.csv")
    assert r.exit_code == 0, r.output
    keys = ["target", "set", "attack", "params", "relation", "n", "n_set", "defense_rate", "target_keep",
            "target_config", "source_config"]
    new, old = (pd.read_csv(p)[keys].sort_values(["target", "set"]).reset_index(drop=True) for p in (v1 / "m.csv",
                                                                                                      V1_MATRIX))
    pd.testing.assert_frame_equal(new, old)
    assert set(new.relation) == {"white-box", "black-box"}


def test_rewriting_a_schema_1_workspace_gives_schema_2_that_round_trips(v1):
    before = {p: records.read_model_record(p) for p in (m.parent for m in v1.glob("models/*/model.json"))}
    sets = {p: records.read_set_record(p) for p in (s.parent for s in v1.glob("sets/*/set.json"))}
    x = torch.rand(4, 1, 32, 32)
    outputs = {p.name: robench.load_model(p)(x) for p in before}
    for path, rec in before.items():
        records.write_model_record(path, rec)
        raw = _raw(path / records.MODEL_JSON)
        assert raw["schema"] == 2 and "name" not in raw["config"] and raw["config"]["arch"] == rec.arch
        assert (raw["config"].get("defect") is None) == (path.name == "scripted")  # only robench's own have one
        assert records.read_model_record(path) == rec
        torch.testing.assert_close(robench.load_model(path)(x), outputs[path.name])
    for path, rec in sets.items():
        records.write_set_record(path, rec)
        assert _raw(path / records.SET_JSON)["schema"] == 2 and records.read_set_record(path) == rec
    assert "defect" in (v1 / "models" / "tiny" / "model.json").read_text()  # human-readable, nested by concept
    assert len((v1 / "models" / "tiny" / "model.json").read_text().splitlines()) > 40  # indented, one key a line
    df = robench.matrix(v1, device="cpu", use_cache=False)
    assert set(zip(df.target, df.relation, strict=True)) >= {("tiny", "white-box"), ("scripted", "black-box")}


def test_a_robench_01_record_migrates_to_typed_fields(v01):
    raw, rec = _raw(v01 / "models" / "tiny" / "model.json"), store.read_model("tiny", v01)
    assert rec.config.flat() == raw["config"] and rec.history.to_json() == raw["history"]
    assert {k: v for k, v in rec.recipe.to_json().items() if k in raw["recipe"]} == raw["recipe"]
    assert rec.recipe.schedule == "step" and rec.recipe.nesterov is False  # what 0.1 trained with, before the fields
    assert rec.config.family == store.read_set("tiny-fgsm-eps8-n8", v01).sources[0].family


def test_a_corrupt_nested_field_is_the_corrupt_record_error(v1):
    path = v1 / "models" / "tiny" / "model.json"
    records.write_model_record(path.parent, records.read_model_record(path.parent))
    good = _raw(path)
    for part, key, bad in [("config", "defect", {"keep": "x"}), ("config", "defect", {"placement": "middle"}),
                           ("recipe", "milestones", "8,12"), ("config", "strides", ["a"]), ("origin", "details", [1])]:
        broken = json.loads(json.dumps(good))
        broken[part][key] = bad
        path.write_text(json.dumps(broken))
        with pytest.raises(RobenchError, match=r"^corrupt model record .*model\.json") as err:
            store.read_model("tiny", v1)
        assert "\n" not in str(err.value)
    path.write_text(json.dumps({**good, "history": [{"epoch": "one"}]}))
    with pytest.raises(RobenchError, match="corrupt model record"):
        store.read_model("tiny", v1)


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
    assert rec.config.keep == 0.5 and rec.epochs == 2
    full, cut = (store.read_tensors(Path(ws) / "models" / n / "model.safetensors") for n in ("full", "cut"))
    assert all(torch.equal(full[k], cut[k]) for k in full)


def test_train_leaves_the_callers_random_state_alone(ws):
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    robench.train("tiny", dataset="digits", workspace=ws, preset="quick", epochs=1, width=4, device="cpu")
    assert torch.equal(torch.random.get_rng_state(), before)
