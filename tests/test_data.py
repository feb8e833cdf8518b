"""Datasets: the offline digits split, folders, missing data."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from robench.datasets import augment, data_dir, load_dataset
from robench.datasets.augment import train_transform
from robench.errors import RobenchError


def test_digits_is_a_fixed_real_split():
    a, b = load_dataset("digits"), load_dataset("digits")
    assert torch.equal(a.test.images, b.test.images) and torch.equal(a.train.labels, b.train.labels)
    assert a.train.images.shape[1:] == (1, 32, 32) and len(a.train) + len(a.test) == 1797
    assert 0 <= float(a.train.images.min()) and float(a.train.images.max()) <= 1
    assert set(a.test.labels.tolist()) == set(range(10))
    # no test image also sits in the training set
    train_rows = {tuple(x.flatten().tolist()) for x in a.train.images[:, :, ::4, ::4]}
    overlap = sum(tuple(x.flatten().tolist()) in train_rows for x in a.test.images[:, :, ::4, ::4])
    assert overlap < 5


def test_pixel_mean_is_per_pixel(tmp_path):
    d = load_dataset("digits")
    mean = d.pixel_mean()
    assert mean.shape == (1, 32, 32)
    torch.testing.assert_close(mean, d.train.floats().mean(0))


def test_missing_cifar_offline_says_where(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBENCH_DATA", str(tmp_path / "data"))
    assert data_dir() == tmp_path / "data"
    with pytest.raises(RobenchError, match=str(tmp_path / "data")):
        load_dataset("cifar10", download=False)


def test_unknown_dataset_suggests():
    with pytest.raises(RobenchError, match="did you mean cifar10"):
        load_dataset("cifar-10")


def _write_tree(root, mode, classes=("a", "b"), size=12):
    for split in ("train", "test"):
        for i, c in enumerate(classes):
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for j in range(3):
                Image.new(mode, (size, size), color=(i * 80 + j) if mode == "L" else (i * 80, j, 0)).save(
                    root / split / c / f"{j}.png")


@pytest.mark.parametrize("mode,channels", [("L", 1), ("RGB", 3)])
def test_image_folder(tmp_path, mode, channels):
    _write_tree(tmp_path, mode)
    d = load_dataset("folder", tmp_path)
    assert d.in_channels == channels and d.num_classes == 2 and len(d.train) == 6
    assert d.train.floats().max() <= 1


def test_image_folder_mismatched_classes(tmp_path):
    _write_tree(tmp_path, "L")
    (tmp_path / "test" / "c").mkdir()
    Image.new("L", (12, 12)).save(tmp_path / "test" / "c" / "0.png")
    with pytest.raises(RobenchError, match="different class"):
        load_dataset("folder", tmp_path)


def test_folder_without_splits_is_clear(tmp_path):
    with pytest.raises(RobenchError, match="train and .*test"):
        load_dataset("folder", tmp_path)


def test_crop_flip_augmentation_keeps_shape_and_range():
    torch.manual_seed(0)
    t = train_transform("crop-flip", 32)
    x = torch.rand(3, 32, 32)
    y = t(x)
    assert y.shape == x.shape and 0 <= float(y.min()) and float(y.max()) <= 1
    assert train_transform("none", 32) is None


def test_one_check_for_every_augmentation_entry():
    """The in-memory transform, the streamed one and a recipe's augmentation all go through augment.check: the same
    one-line error; "default" stands for the dataset's own augmentation, never for a transform."""
    for bad in ("crop", "default"):
        messages = set()
        for call, args in ((train_transform, (bad, 32)), (augment.stream_transform, (bad, 32)),
                           (augment.resolve, (bad, bad))):
            with pytest.raises(RobenchError) as err:
                call(*args)
            messages.add(str(err.value))
        assert messages == {f"unknown augmentation '{bad}': choose one of none, flip, crop-flip, resized-crop-flip"}
    assert augment.resolve("default", "flip") == "flip" and augment.resolve("none", "flip") == "none"
    assert set(augment.AUGMENT_STEPS) < set(augment.AUGMENTS)  # the batch-wise ones are a subset of the names
