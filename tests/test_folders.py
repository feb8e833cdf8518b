"""Image folders of any size: the automatic in-memory/streamed switch, the streamed split's interface and
transforms, worker-independent determinism, test-only folders, and bad input."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch
from conftest import write_digits_tree
from PIL import Image
from torchvision.transforms import v2

import robench
from robench.datasets import Split, SplitLike, folders, load_dataset, resolve_dataset
from robench.datasets.augment import eval_transform, resize_for
from robench.datasets.folders import StreamedSplit
from robench.errors import RobenchError


@pytest.fixture(scope="module")
def small_rgb(tmp_path_factory) -> Path:
    """Real digits, 3 channels, 32 px, 20 per class (about 160 train and 40 test images)."""
    return write_digits_tree(tmp_path_factory.mktemp("small") / "small-rgb", mode="RGB", per_class=20)


def test_small_same_size_folders_stay_in_memory_and_the_rule_switches(small_rgb, monkeypatch):
    info = load_dataset("folder", small_rgb)
    assert isinstance(info.test, Split) and info.options == {} and info.test.shape == (3, 32, 32)
    monkeypatch.setattr(folders, "MEMORY_BUDGET", 1000)  # a tree "too large for memory"
    big = load_dataset("folder", small_rgb, image_size=24)
    assert isinstance(big.test, StreamedSplit) and big.options == {"stream": True, "image_size": 24}
    assert big.default_augment == "resized-crop-flip" and big.ref.label == "folder:small-rgb@24px"
    forced = load_dataset("folder", small_rgb, stream=False)  # the override wins over the rule
    assert isinstance(forced.test, Split)
    # the same files and labels: one fingerprint; the options say which view of them a record used
    assert big.fingerprint == info.fingerprint and not big.ref.same_data(info.ref)



def test_both_split_types_are_split_like(small_rgb):
    """Split and StreamedSplit offer every member of the SplitLike protocol, train_epoch with the same parameters,
    and a folder read both ways serves the same labels through it."""
    members = {m for m in vars(SplitLike) if not m.startswith("_")} | set(SplitLike.__annotations__) | {"__len__"}
    assert {"shape", "floats", "batches", "train_epoch", "mean", "labels", "in_memory", "files"} <= members
    streamed, memory = (load_dataset("folder", small_rgb, stream=s) for s in (True, False))
    for split in (memory.test, streamed.test):
        missing = [m for m in members if not hasattr(split, m)]
        assert not missing, (type(split).__name__, missing)
        params = list(inspect.signature(split.train_epoch).parameters)
        assert params == list(inspect.signature(SplitLike.train_epoch).parameters)[1:], type(split).__name__
    assert torch.equal(memory.test.labels, streamed.test.labels) and memory.test.files == streamed.test.files


def test_a_folder_of_mixed_sizes_is_streamed_automatically(tmp_path):
    root = write_digits_tree(tmp_path / "mixed", per_class=10, test_fraction=0.5)
    odd = next((root / "train" / "0").iterdir())
    Image.open(odd).resize((40, 40)).save(odd)
    assert isinstance(load_dataset("folder", root).train, StreamedSplit)
    with pytest.raises(RobenchError, match=r"differ in size \(.*0/.*stream the folder"):
        load_dataset("folder", root, stream=False)


def test_streamed_split_decodes_with_the_imagenet_evaluation_transform(small_rgb):
    info = load_dataset("folder", small_rgb, stream=True, image_size=20, workers=0)
    test = info.test
    assert test.shape == (3, 20, 20) and len(test) == len(test.labels) and resize_for(224) == 256
    path = small_rgb / "test" / test.files[3]
    with Image.open(path) as im:  # resize the shorter side to 20*256/224 = 23, centre crop 20
        expected = v2.functional.pil_to_tensor(eval_transform(20)(im.convert("RGB"))).float() / 255
    assert resize_for(20) == 23 and torch.equal(test.floats(torch.tensor([3]))[0], expected)
    batches = list(test.batches(16))
    assert [b[0] for b in batches][:2] == [slice(0, 16), slice(16, 32)]
    every = torch.cat([x for _, x, _ in batches])
    assert torch.equal(every, test.floats()) and torch.equal(torch.cat([y for *_, y in batches]), test.labels)
    assert torch.equal(test.floats(slice(5, 9)), every[5:9])
    # the pixel mean of a streamed split is the mean of (a sample of) its evaluation views
    torch.testing.assert_close(info.train.mean(limit=10_000), info.train.floats().mean(0))
    # resolving the record's reference gives back the same test tensors
    again = resolve_dataset(info.ref, workers=1)
    assert isinstance(again.test, StreamedSplit) and torch.equal(again.test.floats(torch.arange(8)), every[:8])


def test_streamed_training_batches_do_not_depend_on_workers_or_order(small_rgb):
    train = load_dataset("folder", small_rgb, stream=True, image_size=16).train

    def epoch(workers, seed=1, epoch=2):
        batches = list(train.train_epoch(32, "resized-crop-flip", seed, epoch, torch.device("cpu"), workers=workers))
        return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])

    (x0, y0), (x2, y2) = epoch(0), epoch(2)
    assert len(train.train_epoch(32, "flip", 0, 0, torch.device("cpu"))) == -(-len(train) // 32)
    assert x0.shape == (len(train), 3, 16, 16) and x0.dtype == torch.float32 and 0 <= x0.min() and x0.max() <= 1
    assert torch.equal(x0, x2) and torch.equal(y0, y2)  # 0 or 2 workers: the same epoch, image for image
    x_other, y_other = epoch(0, epoch=3)
    assert not torch.equal(y0, y_other) and sorted(y0.tolist()) == sorted(y_other.tolist())  # reshuffled
    # two ranks of a torchrun job see disjoint halves of the same permutation
    ranks = [list(train.train_epoch(32, "none", 1, 2, torch.device("cpu"), rank=r, world=2)) for r in (0, 1)]
    assert sum(len(torch.cat([y for _, y in r])) for r in ranks) >= len(train)


def test_streamed_training_resumes_bit_identically(small_rgb, ws):
    kw = dict(dataset="folder", data_dir=small_rgb, workspace=ws, preset="quick", epochs=2, width=4, device="cpu",
              stream=True, image_size=16, seed=2)
    full = robench.train("tiny", name="full", workers=1, **kw)
    assert full.recipe.augment == "resized-crop-flip" and full.dataset.options["image_size"] == 16

    def stop(kind, payload):
        if kind == "epoch" and payload["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        robench.train("tiny", name="cut", workers=0, callback=stop, **kw)
    robench.train("tiny", name="cut", resume=True, workers=1, **kw)
    a, b = (robench.store.read_tensors(Path(ws) / "models" / n / "model.safetensors") for n in ("full", "cut"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_test_only_folder_is_read_flat_or_from_test(small_rgb, tmp_path):
    flat = folders.scan_test_only(small_rgb / "test")
    nested = folders.scan_test_only(small_rgb)
    assert flat.classes == nested.classes == [str(i) for i in range(10)] and flat.files == nested.files


# ---------------------------------------------------------------- bad input


def test_bad_trees_are_one_line_errors(tmp_path):
    root = write_digits_tree(tmp_path / "t", per_class=10, test_fraction=0.5)
    (root / "test" / "9").rename(root / "test" / "nine")
    with pytest.raises(RobenchError, match=r"different class folders: .*/test lacks 9; .*/train lacks nine"):
        load_dataset("folder", root)
    (root / "test" / "nine").rename(root / "test" / "9")
    (root / "train" / "empty").mkdir()
    (root / "test" / "empty").mkdir()
    with pytest.raises(RobenchError, match=r"class folder .*train/empty has no images; add images"):
        load_dataset("folder", root)
    (root / "train" / "empty").rmdir()
    (root / "test" / "empty").rmdir()
    with pytest.raises(RobenchError, match="--image-size applies to streamed folders"):
        load_dataset("folder", root, image_size=16, stream=False)
    with pytest.raises(RobenchError, match="--stream does not apply to dataset digits"):
        load_dataset("digits", stream=True)
