"""The cross-model matrix: defense rate and agreement recomputed independently, relations, cache, edge cases.

Sets are built here with a hand-written FGSM and ``store.SetWriter`` (the set format is the contract with
the attack layer); the helpers are reused by the other scoring test files.
"""

from __future__ import annotations

import importlib
import math
import shutil
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import robench
from robench import store
from robench.datasets import load_dataset
from robench.errors import RobenchError
from robench.models import create_model
from robench.records import DatasetRef, ModelRecord, SetRecord, SourceRef
from robench.scoring import COLUMNS, matrix, relation, select

matrix_mod = importlib.import_module("robench.scoring.matrix")

DIGITS: DatasetRef = load_dataset("digits").ref


# ---------------------------------------------------------------- helpers (shared with the other test files)


def copy_models(trained_ws: str, tmp_path: Path) -> str:
    """A private workspace with the session's trained models (the shared one must stay untouched)."""
    ws = tmp_path / "scored"
    shutil.copytree(Path(trained_ws) / "models", ws / "models")
    return str(ws)


def source_entry(record: ModelRecord) -> SourceRef:
    return SourceRef.of(record)


def write_set(ws: str, name: str, tensors: dict[str, torch.Tensor], sources: list[SourceRef], method: str = "fgsm",
              params: dict | None = None, dataset: DatasetRef | None = None) -> SetRecord:
    """Write a set with SetWriter and the record of the set contract."""
    d = (tensors["adv"] - tensors["clean"]).flatten(1)
    tensors = {"l2": d.norm(dim=1), "linf": d.abs().amax(1), **tensors}
    with store.SetWriter(store.set_dir(name, ws)) as writer:
        writer.add(tensors)
        return writer.finish(SetRecord(
            name=name, sources=sources, dataset=dataset or DIGITS, method=method, backend="torch",
            params=params or {"eps": 0.1}, seed=0, attempted=len(tensors["labels"]), success_rate=1.0))


def fgsm_set(ws: str, source: str, name: str, eps: float = 0.1) -> dict:
    """FGSM against ``source`` on the digits test images it classifies correctly; keeps the successes."""
    model = robench.load_model(source, ws)
    record = store.read_model(source, ws)
    data = load_dataset("digits")
    x, y = data.test.floats(), data.test.labels
    with torch.no_grad():
        idx = (model(x).argmax(1) == y).nonzero().flatten()
    x, y = x[idx].requires_grad_(True), y[idx]
    (grad,) = torch.autograd.grad(F.cross_entropy(model(x), y), x)
    adv = (x + eps * grad.sign()).clamp(0, 1).detach()
    with torch.no_grad():
        pred = model(adv).argmax(1)
    fooled = pred != y
    tensors = {"adv": adv[fooled], "clean": x.detach()[fooled], "labels": y[fooled], "source_pred": pred[fooled],
               "indices": idx[fooled]}
    return write_set(ws, name, tensors, [source_entry(record)], params={"eps": eps})


def random_set(ws: str, name: str, sources: list[SourceRef], n: int = 16, seed: int = 0, channels: int = 1,
               dataset: DatasetRef | None = None, labels: torch.Tensor | None = None) -> SetRecord:
    g = torch.Generator().manual_seed(seed)
    clean = torch.rand(n, channels, 32, 32, generator=g)
    adv = (clean + 0.1 * torch.randn(clean.shape, generator=g)).clamp(0, 1)
    y = torch.randint(0, 10, (n,), generator=g) if labels is None else labels
    tensors = {"adv": adv, "clean": clean, "labels": y, "source_pred": (y + 1) % 10,
               "indices": torch.arange(n)}
    return write_set(ws, name, tensors, sources, dataset=dataset)


def save_untrained(ws: str, name: str, seed: int = 0, **config) -> ModelRecord:
    """An untrained digits model saved with the record the matrix needs."""
    torch.manual_seed(seed)
    model = create_model("tiny", num_classes=10, in_channels=1, input_size=32, **config)
    record = ModelRecord(name=name, config=model.config, dataset=DIGITS, seed=seed)
    return store.save_model(model.state_dict(), record, store.model_dir(name, ws))


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def scored_ws(trained_ws, tmp_path_factory) -> str:
    """Trained models plus two FGSM sets (one per source)."""
    ws = copy_models(trained_ws, tmp_path_factory.mktemp("matrix"))
    fgsm_set(ws, "tiny", "fgsm-tiny", eps=0.1)
    fgsm_set(ws, "tiny-keep0.3-bottom", "fgsm-keep", eps=0.15)
    return ws


# ---------------------------------------------------------------- defense rate and agreement


def test_scores_equal_an_independent_recomputation(scored_ws):
    df = matrix(scored_ws, device="cpu")
    assert list(df.columns) == COLUMNS and len(df) == 4
    data = load_dataset("digits")
    for row in df.itertuples():
        model = robench.load_model(row.target, scored_ws)
        s = store.load_set(row.set, scored_ws)
        with torch.no_grad():
            clean, adv = model(s.clean).argmax(1), model(s.adv).argmax(1)
            test_pred = model(data.test.floats()).argmax(1)
        ok = clean == s.labels
        n = int(ok.sum())
        assert row.n == n and row.n_set == len(s)
        assert row.defense_rate == int((adv[ok] == s.labels[ok]).sum()) / n
        assert row.agreement == int((adv[ok] == s.source_pred[ok]).sum()) / n
        assert row.target_clean_accuracy == pytest.approx(float((test_pred == data.test.labels).double().mean()),
                                                          abs=1e-12)
        assert row.source == s.record.sources[0].name and row.method == "fgsm"
        assert row.eps == s.record.params["eps"]
    white = df[df.target == df.source]
    assert (white.relation == "white-box").all() and (white.defense_rate == 0).all() and (white.agreement == 1).all()
    assert (df[df.target != df.source].relation == "black-box").all()
    assert df.attrs["skipped"] == []


def test_filters_select_cells(scored_ws):
    df = matrix(scored_ws, models="tiny-keep*", sets=["fgsm-tiny"], device="cpu")
    assert list(zip(df.target, df.set, strict=True)) == [("tiny-keep0.3-bottom", "fgsm-tiny")]
    df = matrix(scored_ws, models="tiny,tiny-keep0.3-bottom", sets="fgsm-*", device="cpu")
    assert len(df) == 4
    with pytest.warns(DeprecationWarning, match="models="):  # the old keyword still works, for one release
        assert len(matrix(scored_ws, targets="tiny-keep*", sets="fgsm-tiny", device="cpu")) == 1


def test_select_errors_name_pattern_and_choices(tmp_path):
    assert select(["a", "ab", "b"], "a*", "model") == ["a", "ab"]
    assert select(["a", "ab", "b"], "b, a", "model") == ["a", "b"]
    with pytest.raises(RobenchError, match=r"no model matches 'zz\*'.*available: a, ab, b"):
        select(["a", "ab", "b"], "a,zz*", "model")
    with pytest.raises(RobenchError, match="no sets in workspace"):
        select([], "*", "set", tmp_path)


# ---------------------------------------------------------------- relation


def test_relation_labels(ws):
    a = save_untrained(ws, "a", seed=0)
    save_untrained(ws, "a-seed1", seed=1)  # same architecture, other initialisation
    b = save_untrained(ws, "b", keep=0.5, mask_seed=0)
    save_untrained(ws, "b-mask1", keep=0.5, mask_seed=1)  # same keep, other mask
    save_untrained(ws, "b-top", keep=0.5, placement="top")  # other placement
    save_untrained(ws, "c", width=8)  # other width
    random_set(ws, "set-a", [source_entry(a)])
    random_set(ws, "set-b", [source_entry(b)])
    random_set(ws, "set-ab", [source_entry(a), source_entry(b)])
    df = matrix(ws, device="cpu")
    got = {(r.target, r.set): r.relation for r in df.itertuples()}
    expected = {
        "set-a": {"a": "white-box", "a-seed1": "gray-box", "b": "black-box", "b-mask1": "black-box",
                  "b-top": "black-box", "c": "black-box"},
        "set-b": {"a": "black-box", "a-seed1": "black-box", "b": "white-box", "b-mask1": "gray-box",
                  "b-top": "black-box", "c": "black-box"},
        "set-ab": {"a": "white-box", "a-seed1": "gray-box", "b": "white-box", "b-mask1": "gray-box",
                   "b-top": "black-box", "c": "black-box"},
    }
    assert got == {(t, s): r for s, rows in expected.items() for t, r in rows.items()}
    assert set(df[df.set == "set-ab"].source) == {"a+b"}


def test_relation_retrained_source_is_not_white_box():
    cfg = create_model("tiny").config
    target = ModelRecord(name="m", config=cfg, dataset=DIGITS, weights_sha256="new")
    assert relation(target, [SourceRef("m", "old", cfg)]) == "gray-box"
    assert relation(target, [SourceRef("m", "new", cfg)]) == "white-box"


# ---------------------------------------------------------------- cache


def count_predictions(monkeypatch) -> list:
    calls = []
    real = matrix_mod.predict

    def counting(model, images, *args, **kwargs):
        calls.append(len(images))
        return real(model, images, *args, **kwargs)

    monkeypatch.setattr(matrix_mod, "predict", counting)
    return calls


def test_cache_is_used_and_invalidated_by_retraining(ws, monkeypatch):
    a = save_untrained(ws, "a", seed=0)
    save_untrained(ws, "b", seed=1)
    random_set(ws, "s1", [source_entry(a)], seed=1)
    calls = count_predictions(monkeypatch)
    first = matrix(ws, device="cpu")
    assert len(calls) == 2 * 3  # per model: the test split, the set's clean and adversarial images
    cache = Path(ws) / "cache" / "predictions"
    assert len(list(cache.glob("*/*.safetensors"))) == 4

    calls.clear()
    second = matrix(ws, device="cpu")
    assert calls == []
    assert first.equals(second)

    random_set(ws, "s2", [source_entry(a)], seed=2)  # a new set costs only its cells
    calls.clear()
    matrix(ws, device="cpu")
    assert len(calls) == 2 * 2

    save_untrained(ws, "b", seed=7)  # retrained under the same name: new weights, new hash
    calls.clear()
    third = matrix(ws, device="cpu")
    assert len(calls) == 1 + 2 * 2  # b only: the test split, then both sets
    assert third[third.target == "b"].target_sha256.iloc[0] != first[first.target == "b"].target_sha256.iloc[0]

    calls.clear()
    matrix(ws, device="cpu", use_cache=False)
    assert len(calls) == 2 * (1 + 2 * 2)


def test_clean_predictions_come_from_the_test_split(scored_ws, monkeypatch):
    """A set of real test images reuses the target's test-split predictions: only the adversarial images run."""
    calls = count_predictions(monkeypatch)
    matrix(scored_ws, models="tiny", sets="fgsm-keep", device="cpu", use_cache=False)
    n_test = len(load_dataset("digits").test)
    assert calls == [n_test, store.load_set("fgsm-keep", scored_ws).record.n]


# ---------------------------------------------------------------- edge cases


def constant_model(ws: str, name: str, label: int) -> ModelRecord:
    """A model that always predicts ``label``."""
    torch.manual_seed(0)
    model = create_model("tiny", num_classes=10, in_channels=1, input_size=32)
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
        last.bias[label] = 10.0
    record = ModelRecord(name=name, config=model.config, dataset=DIGITS, seed=0)
    return store.save_model(model.state_dict(), record, store.model_dir(name, ws))


def test_no_correct_original_gives_n_zero_and_nan(ws):
    nine = constant_model(ws, "always9", 9)
    random_set(ws, "no-nines", [source_entry(nine)], labels=torch.arange(16) % 9)
    df = matrix(ws, device="cpu")
    row = df.iloc[0]
    assert row.n == 0 and math.isnan(row.defense_rate) and math.isnan(row.agreement)
    assert row.n_set == 16 and row.relation == "white-box"


def test_sets_of_another_dataset_or_shape_are_skipped_with_a_reason(ws):
    a = save_untrained(ws, "a")
    random_set(ws, "ok", [source_entry(a)])
    mnist = replace(DIGITS, name="mnist", input_size=28, fingerprint="0" * 64)
    random_set(ws, "other-data", [source_entry(a)], dataset=mnist)
    random_set(ws, "rgb", [source_entry(a)], channels=3, dataset=replace(DIGITS, in_channels=3))
    events = []
    df = matrix(ws, device="cpu", callback=lambda kind, p: events.append((kind, p)))
    assert list(df.set) == ["ok"]
    reasons = {s["set"]: s["reason"] for s in df.attrs["skipped"]}
    assert "dataset mnist" in reasons["other-data"] and "digits" in reasons["other-data"]
    assert "3x32x32" in reasons["rgb"] and "1x32x32" in reasons["rgb"]
    assert sum(kind == "skip" for kind, _ in events) == 2
    start, *rest = events  # progress events (robench.events): a total, then every cell counted once
    assert start[0] == "start" and start[1]["total"] == 3 and [p["done"] for _, p in rest] == [1, 2, 3]


def test_api_export():
    assert robench.matrix is matrix


# ---------------------------------------------------------------- targeted sets


def test_target_hit_rate_of_a_targeted_set_recomputed(trained_ws, tmp_path):
    """A targeted set's matrix rows carry the target hit rate beside the defense rate; untargeted rows have NaN."""
    ws = copy_models(trained_ws, tmp_path)
    robench.attack("tiny", "pgd", target="least-likely", eps="32/255", steps=10, n=48, name="tgt", workspace=ws)
    fgsm_set(ws, "tiny", "plain", eps=0.1)
    df = matrix(ws, device="cpu")
    assert list(df.columns) == COLUMNS and len(df) == 4
    assert df[df.set == "plain"].target_hit_rate.isna().all()
    s = store.load_set("tgt", ws)
    targets = s.extra["targets"]
    for row in df[df.set == "tgt"].itertuples():
        model = robench.load_model(row.target, ws)
        with torch.no_grad():
            clean, adv = model(s.clean).argmax(1), model(s.adv).argmax(1)
        ok = clean == s.labels
        assert row.n == int(ok.sum()) > 0
        assert row.target_hit_rate == int((adv[ok] == targets[ok]).sum()) / row.n
        assert row.defense_rate == int((adv[ok] == s.labels[ok]).sum()) / row.n
        assert "target=least-likely" in row.attack and "targeted" not in row.attack
    white = df[(df.set == "tgt") & (df.target == "tiny")].iloc[0]
    assert white.relation == "white-box" and white.target_hit_rate == 1.0  # every kept example hits its target
    again = matrix(ws, device="cpu")  # from the prediction cache: the same numbers
    pd.testing.assert_frame_equal(df, again)
