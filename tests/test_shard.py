"""`robench matrix --shard I/N` on several machines, then `robench matrix merge`."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

import robench
from robench.cli.app import app
from robench.errors import RobenchError
from robench.scoring.matrix import parse_shard, shard_of


@pytest.fixture(scope="module")
def ws_with_sets(trained_ws, tmp_path_factory):
    ws = tmp_path_factory.mktemp("shard") / "ws"
    shutil.copytree(trained_ws, ws)
    robench.attack("tiny", "fgsm", eps="16/255", n=40, workspace=ws, device="cpu")
    robench.attack("tiny-keep0.3-bottom", "fgsm", eps="16/255", n=40, workspace=ws, device="cpu")
    return ws


def test_shards_partition_the_targets():
    names = ["d", "a", "c", "b", "e"]
    parts = [shard_of(names, (i, 3)) for i in (1, 2, 3)]
    assert sorted(sum(parts, [])) == sorted(names)
    assert all(not set(p) & set(q) for p in parts for q in parts if p is not q)
    assert parse_shard("2/3") == (2, 3) and parse_shard(None) is None
    for bad in ("0/3", "4/3", "x", "1-2"):
        with pytest.raises(RobenchError):
            parse_shard(bad)


def test_sharded_matrix_merges_to_the_full_matrix(ws_with_sets, tmp_path):
    runner = CliRunner()
    full, one, two, merged = (tmp_path / f for f in ("full.csv", "1.csv", "2.csv", "merged.csv"))
    for args in (["--out", full], ["--shard", "1/2", "--out", one], ["--shard", "2/2", "--out", two]):
        r = runner.invoke(app, ["matrix", "--workspace", str(ws_with_sets), *map(str, args)])
        assert r.exit_code == 0, r.output
    assert set(pd.read_csv(one)["target"]).isdisjoint(pd.read_csv(two)["target"])
    r = runner.invoke(app, ["matrix", "merge", str(one), str(two), "--out", str(merged)])
    assert r.exit_code == 0, r.output
    key = ["target", "set"]
    a = pd.read_csv(full).sort_values(key).reset_index(drop=True)
    b = pd.read_csv(merged).sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b[a.columns])
    r = runner.invoke(app, ["matrix", "merge", str(one), str(one)])
    assert r.exit_code == 1 and "more than one file" in r.output and "Traceback" not in r.output
