"""The artifact store: safetensors + JSON, hashes, corrupt files, atomic writes."""

from __future__ import annotations

import json

import pytest
import torch

from robench import store
from robench.errors import RobenchError
from robench.models import create_model, load_model
from robench.records import DatasetRef, ModelRecord, SetRecord

REF = DatasetRef("cifar10", num_classes=10, in_channels=3, input_size=32)


def saved(tmp_path, name="m"):
    model = create_model("tiny", keep=0.5)
    record = store.save_model(model.state_dict(), ModelRecord(name, model.config, REF), tmp_path / name)
    return model, record


def test_model_roundtrip_and_metadata(tmp_path):
    model, record = saved(tmp_path)
    loaded = load_model(tmp_path / "m")
    assert not loaded.training and loaded.robench_record == record
    assert json.loads((tmp_path / "m" / "model.json").read_text())["weights_sha256"] == record.weights_sha256
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(loaded(x), model.eval()(x))
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["model.json", "model.safetensors"]


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_corrupt_weights_are_a_clear_error(tmp_path, damage):
    saved(tmp_path)
    weights = tmp_path / "m" / "model.safetensors"
    data = weights.read_bytes()
    if damage == "truncate":
        weights.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        weights.write_bytes(data[:-10] + bytes(b ^ 0xFF for b in data[-10:]))
    else:
        weights.write_bytes(b"not a tensor file")
    with pytest.raises(RobenchError, match="corrupt|does not match"):
        load_model(tmp_path / "m")


def test_corrupt_metadata_is_a_clear_error(tmp_path):
    saved(tmp_path)
    (tmp_path / "m" / "model.json").write_text("{not json")
    with pytest.raises(RobenchError, match="corrupt metadata"):
        load_model(tmp_path / "m")


def test_unknown_model_name_suggests(tmp_path):
    saved(tmp_path / "models", "resnet18-keep0.1-bottom")
    with pytest.raises(RobenchError, match="did you mean resnet18-keep0.1-bottom"):
        load_model("resnet18-keep0.2-bottom", workspace=tmp_path)


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "x.json"
    with pytest.raises(RuntimeError), store.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_set_writer_streams_and_cleans_up(tmp_path):
    def batch(n):
        x = torch.rand(n, 1, 8, 8)
        return {"adv": x, "clean": x, "labels": torch.zeros(n, dtype=torch.int64),
                "source_pred": torch.ones(n, dtype=torch.int64), "indices": torch.arange(n),
                "l2": torch.zeros(n), "linf": torch.zeros(n)}

    with pytest.raises(RuntimeError), store.SetWriter(tmp_path / "sets" / "s") as w:
        w.add(batch(3))
        raise RuntimeError("interrupted")
    assert list((tmp_path / "sets").iterdir()) == []
    with store.SetWriter(tmp_path / "sets" / "s") as w:
        w.add(batch(3))
        w.add(batch(2))
        record = w.finish(SetRecord("s", [], REF, "test", "torch", {}))
    loaded = store.load_set("s", workspace=tmp_path)
    assert len(loaded) == 5 == record.n and loaded.record.method == "test" and loaded.record == record
    assert [p.name for p in (tmp_path / "sets").iterdir()] == ["s"]
