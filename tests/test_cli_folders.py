"""The whole pipeline on the user's own images, through the CLI: PNG trees (grayscale and RGB, in memory and
streamed), every score, a plot, a suite, a moved workspace, and bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import write_digits_tree
from PIL import Image, ImageOps
from test_cli_matrix import one_line_error, run

from robench import load_model, store
from robench.datasets import resolve_dataset

TINY = ["--preset", "quick", "--epochs", "1", "--batch-size", "16", "--width", "4", "--device", "cpu"]


def ok(*args):
    r = run(*args)
    assert r.exit_code == 0, r.output
    return r


def stylized(tree: Path, out: Path) -> Path:
    """A test-only folder OUT/<class>/*.png: the tree's test images with inverted colours (another test set)."""
    for src in (tree / "test").rglob("*.png"):
        dst = out / src.parent.name / src.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(src) as im:
            ImageOps.invert(im.convert("RGB")).convert(im.mode).save(dst)
    return out


def suite_file(path: Path, tree: Path, folder: Path, extra_train: str = "") -> Path:
    path.write_text(f"""
[study]
name = "mini"
dataset = "folder"
data_dir = "{tree}"

[train]
preset = "quick"
epochs = 1
width = 4
{extra_train}

[[models]]
arch = "tiny"
keep = [1.0, 0.5]

[[attacks]]
source = "tiny"
method = "pgd"
steps = 2
n = 30

[matrix]
out = "m.csv"

[[scores]]
kind = "folder"
data_dir = "{folder}"
out = "folder.csv"
""")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_the_whole_pipeline_on_a_png_tree(mode, tmp_path):
    tree = write_digits_tree(tmp_path / f"digits-{mode}", mode=mode, per_class=40)
    ws = tmp_path / "ws"
    for keep in ("1", "0.5"):
        r = ok("train", "tiny", "--dataset", "folder", "--data-dir", tree, "--keep", keep, "--workspace", ws, *TINY)
        augment = "flip" if mode == "L" else "crop-flip"  # 1 channel: MNIST's recipe; 3 channels: CIFAR's
        assert f"augmentation {augment}" in r.stderr
    ok("attack", "--source", "tiny", "--method", "fgsm", "--n", "40", "--workspace", ws, "--device", "cpu")
    m = ok("matrix", "--workspace", ws, "--out", tmp_path / "m.csv", "--plot", tmp_path / "heat.png")
    df = pd.read_csv(tmp_path / "m.csv")
    assert len(df) == 2 and set(df.relation) == {"white-box", "black-box"} and "[w]" in m.stdout
    assert (df.dataset == f"folder:{tree.name}").all() and (tmp_path / "heat.png").stat().st_size > 0

    ok("attack", "--source", "tiny", "--method", "boundary", "--steps", "5", "-p", "init_directions=200", "--n", "3",
       "--name", "bnd", "--workspace", ws, "--device", "cpu")
    ok("scores", "boundary", "--mode", "sets", "--sets", "bnd", "--models", "tiny", "--workspace", ws, "--out",
       tmp_path / "b.csv")
    boundary = pd.read_csv(tmp_path / "b.csv")
    assert boundary.loc[0, "from"] == "set bnd" and boundary.loc[0, "n"] == len(store.load_set("bnd", ws)) > 0
    ok("scores", "noise", "--sigmas", "0,0.1", "--n", "40", "--workspace", ws, "--device", "cpu", "--out",
       tmp_path / "noise.csv")
    ok("scores", "shuffle", "--k", "2", "--n", "40", "--workspace", ws, "--device", "cpu")
    ok("scores", "tradeoff", "--set", "tiny-fgsm-eps16-n40", "--workspace", ws, "--device", "cpu")
    ok("plot", "noise", "--from", tmp_path / "noise.csv", "--out", tmp_path / "noise.svg")
    assert (tmp_path / "noise.svg").read_bytes().rstrip().endswith(b"</svg>")

    # the tree's own test/ as a test-only folder gives back each model's recorded clean accuracy
    r = ok("scores", "folder", "--data-dir", tree / "test", "--workspace", ws, "--device", "cpu", "--out",
           tmp_path / "own.csv")
    own = pd.read_csv(tmp_path / "own.csv")
    assert own.accuracy.tolist() == pytest.approx(own.clean_accuracy.tolist(), abs=1e-6)
    other = stylized(tree, tmp_path / "inverted")
    r = ok("scores", "folder", "--data-dir", other, "--workspace", ws, "--device", "cpu", "--out",
           tmp_path / "inv.csv", "--plot", tmp_path / "inv.png")
    inv = pd.read_csv(tmp_path / "inv.csv")
    assert list(inv.columns[:4]) == ["model", "accuracy", "clean_accuracy", "n"] and (inv.n == own.n).all()
    assert inv.accuracy.between(0, 1).all() and "accuracy (%) on inverted" in r.stdout
    assert (tmp_path / "inv.png").read_bytes().startswith(b"\x89PNG")

    # a small suite over the same tree: the models are found done, the rest runs
    suite = suite_file(tmp_path / "mini.toml", tree, other)
    r = ok("run", suite, "--workspace", ws, "--device", "cpu")
    skipped = [line for line in r.stderr.splitlines() if "tiny " in line and "skipped" in line]
    assert skipped and (ws / "results" / "folder.csv").exists()
    assert set(pd.read_csv(ws / "results" / "folder.csv").model) == {"tiny", "tiny-keep0.5-bottom"}


@pytest.mark.slow
def test_the_streamed_path_end_to_end(tmp_path, monkeypatch):
    """A small tree forced onto the streamed path (--stream, 16 px): train, attack, matrix, scores, a suite; then
    the workspace moved to another directory, its data elsewhere."""
    monkeypatch.delenv("ROBENCH_DATA", raising=False)
    tree = write_digits_tree(tmp_path / "tree", mode="RGB", per_class=30)
    ws = tmp_path / "ws"
    stream = ["--stream", "--image-size", "16", "--workers", "1"]
    for keep in ("1", "0.5"):
        r = ok("train", "tiny", "--dataset", "folder", "--data-dir", tree, "--keep", keep, "--workspace", ws,
               *stream, *TINY[:2], "--epochs", "2", *TINY[4:])
        assert "augmentation resized-crop-flip" in r.stderr
    record = store.read_model("tiny", ws)
    assert record.dataset.options == {"stream": True, "image_size": 16} and record.config.input_size == 16
    assert "folder:tree@16px" in ok("models", "--workspace", ws).stdout
    ok("attack", "--source", "tiny", "--method", "fgsm", "--name", "fgsm", "--workspace", ws, "--device", "cpu",
       "--workers", "0")
    advset = store.load_set("fgsm", ws)
    assert advset.clean.shape[1:] == (3, 16, 16) and len(advset) > 0
    ok("matrix", "--workspace", ws, "--out", tmp_path / "m.csv", "--workers", "1")
    df = pd.read_csv(tmp_path / "m.csv").set_index("target")
    assert len(df) == 2 and (df.dataset == "folder:tree@16px").all() and df.n["tiny"] == len(advset)
    ok("scores", "noise", "--sigmas", "0,0.2", "--models", "tiny", "--workspace", ws, "--device", "cpu", "--out",
       tmp_path / "n.csv")
    noise = pd.read_csv(tmp_path / "n.csv")
    assert (noise[noise.sigma == 0].accuracy == 1.0).all()  # common-correct images, streamed in chunks
    ok("scores", "autoattack", "--models", "tiny", "--n", "12", "--batch-size", "5", "--steps", "2", "--queries",
       "10", "--workspace", ws, "--device", "cpu", "--workers", "1", "--out", tmp_path / "aa.csv")
    aa = pd.read_csv(tmp_path / "aa.csv").iloc[0]  # 12 images read in streamed batches of 5: 5, 5, then 2 of 5
    test = resolve_dataset(record.dataset).test
    model = load_model("tiny", ws)
    with torch.no_grad():
        clean = (model(test.floats(slice(0, 12))).argmax(1) == test.labels[:12]).double().mean().item()
    assert aa.n == 12 and aa.clean_accuracy == pytest.approx(clean) and 0 <= aa.robust_accuracy <= clean
    with torch.no_grad():  # a targeted set toward the class this barely trained model predicts most (reachable)
        aim = int(model(test.floats(slice(0, 12))).argmax(1).mode().values)
    ok("attack", "--source", "tiny", "--method", "pgd", "--eps", "0.5", "--steps", "5", "--step", "0.1", "--target",
       str(aim), "--n", "10", "--name", "aim", "--workspace", ws, "--device", "cpu", "--workers", "1")
    aimed = store.load_set("aim", ws)  # correct images picked from streamed batches, those of class aim skipped
    with torch.no_grad():
        assert len(aimed) > 0 and (aimed.labels != aim).all() and (model(aimed.adv).argmax(1) == aim).all()
    ok("scores", "folder", "--data-dir", tree / "test", "--workspace", ws, "--device", "cpu", "--out",
       tmp_path / "f.csv")
    own = pd.read_csv(tmp_path / "f.csv")  # the same evaluation transform as the model's own test split
    assert own.accuracy.tolist() == pytest.approx(own.clean_accuracy.tolist(), abs=1e-6)
    suite = suite_file(tmp_path / "s.toml", tree, tree / "test", 'stream = true\nimage_size = 16\nworkers = 0')
    r = ok("run", suite, "--workspace", ws, "--device", "cpu")
    skipped = [line for line in r.stderr.splitlines() if "tiny-keep0.5-bottom " in line and "skipped" in line]
    assert skipped and (ws / "results" / "m.csv").exists()

    # the workspace copied elsewhere and the data moved: a clear error without --data-dir, the same matrix with it
    new_ws, new_tree = tmp_path / "b" / "ws", tmp_path / "b" / "data" / "tree"
    shutil.copytree(ws, new_ws)
    new_tree.parent.mkdir(parents=True)
    shutil.move(tree, new_tree)
    one_line_error(run("matrix", "--workspace", new_ws), "is not there", "pass --data-dir")
    one_line_error(run("scores", "noise", "--workspace", new_ws), "pass --data-dir")
    ok("matrix", "--workspace", new_ws, "--data-dir", new_tree, "--out", tmp_path / "after.csv", "--no-cache")
    cols = ["target", "set", "n", "defense_rate", "agreement", "relation", "target_clean_accuracy"]
    before = pd.read_csv(tmp_path / "m.csv")  # the matrix before the move (the suite's pgd set came later)
    before = before[before.set == "fgsm"].reset_index(drop=True)
    after = pd.read_csv(tmp_path / "after.csv")
    pd.testing.assert_frame_equal(before[cols], after[after.set == "fgsm"].reset_index(drop=True)[cols])
    ok("scores", "noise", "--models", "tiny", "--workspace", new_ws, "--data-dir", new_tree.parent, "--sigmas", "0.1")


# ---------------------------------------------------------------- bad input


@pytest.fixture
def bad_tree(tmp_path) -> Path:
    return write_digits_tree(tmp_path / "bad", per_class=10, test_fraction=0.5)


def train_on(tree: Path, ws: Path, *extra):
    return run("train", "tiny", "--dataset", "folder", "--data-dir", tree, "--workspace", ws, *TINY, *extra)


def nothing_written(ws: Path) -> None:
    assert not list((ws / "models").glob("*/model.json")) if (ws / "models").exists() else True
    assert not list(ws.rglob("*.safetensors")) if ws.exists() else True


def test_train_and_test_classes_differ(bad_tree, tmp_path):
    shutil.rmtree(bad_tree / "test" / "7")
    one_line_error(train_on(bad_tree, tmp_path / "ws"), "different class folders", "test lacks 7")
    nothing_written(tmp_path / "ws")


def test_an_empty_class_folder(bad_tree, tmp_path):
    (bad_tree / "train" / "extra").mkdir()
    (bad_tree / "test" / "extra").mkdir()
    one_line_error(train_on(bad_tree, tmp_path / "ws"), "train/extra has no images")
    nothing_written(tmp_path / "ws")


@pytest.mark.parametrize("where,extra", [("train", []), ("train", ["--stream", "--image-size", "16"])])
def test_a_corrupt_image_is_named(bad_tree, tmp_path, where, extra):
    victim = sorted((bad_tree / where / "3").iterdir())[0]
    victim.write_bytes(b"not a png at all")
    one_line_error(train_on(bad_tree, tmp_path / "ws", *extra), f"cannot read image {victim}",
                   "replace or delete the file")
    nothing_written(tmp_path / "ws")


def test_a_corrupt_streamed_test_image_stops_the_run_resumably(bad_tree, tmp_path):
    """A streamed split is decoded as it is read: a bad test image is found at the final evaluation; the run
    keeps its checkpoint and saves nothing, and finishes with --resume once the file is replaced."""
    victim = sorted((bad_tree / "test" / "3").iterdir())[0]
    good = victim.read_bytes()
    victim.write_bytes(b"\x89PNG truncated")
    stream = ["--stream", "--image-size", "16"]
    r = train_on(bad_tree, tmp_path / "ws", *stream)
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert r.stderr.strip().splitlines()[-1].startswith(f"error: cannot read image {victim}")
    model = tmp_path / "ws" / "models" / "tiny"
    assert not (model / "model.json").exists() and (model / "checkpoint.safetensors").exists()
    victim.write_bytes(good)
    assert "saved tiny" in ok(*["train", "tiny", "--dataset", "folder", "--data-dir", bad_tree, "--workspace",
                                tmp_path / "ws", *TINY, *stream, "--resume"]).stderr


def test_a_test_only_folder_with_other_classes(tmp_path):
    tree = write_digits_tree(tmp_path / "tree", per_class=20)
    ws = tmp_path / "ws"
    ok("train", "tiny", "--dataset", "folder", "--data-dir", tree, "--workspace", ws, *TINY)
    extra = stylized(tree, tmp_path / "styl")
    shutil.copytree(extra / "3", extra / "cat")
    one_line_error(run("scores", "folder", "--data-dir", extra, "--workspace", ws, "--out", tmp_path / "x.csv"),
                   "has class folder(s) cat that model 'tiny' does not know")
    shutil.rmtree(extra / "cat")
    shutil.rmtree(extra / "5")
    one_line_error(run("scores", "folder", "--data-dir", extra, "--workspace", ws, "--out", tmp_path / "x.csv"),
                   "lacks class folder(s) 5 of model 'tiny'")
    assert not (tmp_path / "x.csv").exists()
    one_line_error(run("scores", "folder", "--data-dir", tmp_path / "nowhere", "--workspace", ws), "is not a folder")


@pytest.mark.parametrize("args,message", [
    (["--image-size", "16"], "--image-size applies to streamed folders"),
    (["--stream", "--image-size", "4"], "--image-size must be a whole number of pixels >= 8"),
])
def test_bad_folder_options(bad_tree, tmp_path, args, message):
    one_line_error(train_on(bad_tree, tmp_path / "ws", *args), message)


def test_stream_options_need_a_folder(tmp_path):
    r = run("train", "tiny", "--dataset", "digits", "--stream", "--workspace", tmp_path / "ws")
    one_line_error(r, "--stream does not apply to dataset digits")


def test_a_suite_folder_score_needs_its_folder(tmp_path):
    suite = tmp_path / "s.toml"
    suite.write_text('[study]\nname = "x"\ndataset = "digits"\n[[scores]]\nkind = "folder"\n')
    one_line_error(run("run", suite, "--dry-run", "--workspace", tmp_path / "ws"), 'kind "folder" needs data_dir')
