"""The device-side input pipeline: crops are crops of the padded image, flips are flips, seeds reproduce,
shards partition one permutation, and crop offsets and flips are uniform over many draws."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from scipy.stats import chisquare

from robench.datasets import Split
from robench.datasets.augment import PAD
from robench.datasets.pipeline import crop_flip, draw, generator


def random_split(n: int, channels: int = 1, size: int = 8, seed: int = 0) -> Split:
    """n random uint8 images with values 1..255 (so the zero padding is recognisable); label i = image i."""
    g = torch.Generator().manual_seed(seed)
    return Split(torch.randint(1, 256, (n, channels, size, size), dtype=torch.uint8, generator=g), torch.arange(n))


def variants(images: torch.Tensor) -> torch.Tensor:
    """Every crop-then-flip of every image, by plain slicing: (N, 9, 9, 2, C, H, W) for offsets (row, col), flip."""
    padded = F.pad(images, (PAD,) * 4)
    h, w = images.shape[-2:]
    crops = torch.stack([torch.stack([padded[:, :, r:r + h, c:c + w] for c in range(2 * PAD + 1)], 1)
                         for r in range(2 * PAD + 1)], 1)
    return torch.stack([crops, crops.flip(-1)], 3)


def test_crop_is_a_crop_of_the_padded_image_and_a_flip_is_a_flip():
    split = random_split(3, channels=3, size=6)
    every = variants(split.images)
    index = torch.arange(3).repeat_interleave(162)
    grid = torch.cartesian_prod(torch.arange(9), torch.arange(9), torch.arange(2)).repeat(3, 1)
    padded = F.pad(split.images, (PAD,) * 4)
    out = crop_flip(padded, index, grid[:, :2], grid[:, 2].bool(), PAD)
    expected = every[index, grid[:, 0], grid[:, 1], grid[:, 2]]
    assert out.dtype == torch.uint8 and torch.equal(out, expected)
    centre = (grid[:, 0] == PAD) & (grid[:, 1] == PAD)
    assert torch.equal(out[centre & (grid[:, 2] == 0)], split.images)  # offset (4, 4), no flip: the image itself
    assert torch.equal(out[centre & (grid[:, 2] == 1)], split.images.flip(-1))
    assert torch.equal(crop_flip(padded, index, grid[:, :2], None, PAD), every[index, grid[:, 0], grid[:, 1], 0])


def test_epochs_serve_each_image_once_as_one_of_its_crops_and_uniformly(tmp_path):
    """Over 8 epochs of 1000 images, every sample matches exactly one crop/flip of its own image, every epoch is a
    permutation, and the 162 (row, column, flip) cells are uniform (chi-square, fixed seed)."""
    n, epochs = 1000, 8
    split = random_split(n)
    every = variants(split.images).flatten(1, 3)  # (N, 162, C, H, W)
    counts = torch.zeros(162, dtype=torch.int64)
    for epoch in range(epochs):
        batches = split.train_epoch(128, "crop-flip", seed=5, epoch=epoch, device="cpu")
        seen = []
        assert len(batches) == 8
        for x, y in batches:
            assert x.dtype == torch.float32 and x.shape[1:] == (1, 8, 8) and 0 <= x.min() and x.max() <= 1
            pixels = (x * 255).round().to(torch.uint8)
            match = (every[y] == pixels[:, None]).flatten(2).all(2)  # (b, 162)
            assert (match.sum(1) == 1).all()
            counts += torch.bincount(match.int().argmax(1), minlength=162)
            seen.append(y)
        assert torch.equal(torch.cat(seen).sort().values, torch.arange(n))
    assert counts.sum() == n * epochs
    assert chisquare(counts.numpy()).pvalue > 1e-3
    cells = counts.view(9, 9, 2)
    for marginal in (cells.sum((1, 2)), cells.sum((0, 2)), cells.sum((0, 1))):  # rows, columns, flips
        assert (marginal > 0).all() and chisquare(marginal.numpy()).pvalue > 1e-3


def test_seeds_reproduce_and_differ():
    def epoch(split, seed, e, augment="crop-flip"):
        return [(x.clone(), y.clone()) for x, y in split.train_epoch(64, augment, seed=seed, epoch=e, device="cpu")]

    a, b = random_split(200), random_split(200)
    first = epoch(a, 1, 3)
    for again in (epoch(a, 1, 3), epoch(b, 1, 3)):  # the same split again, and a fresh one with a cold cache
        assert all(torch.equal(x, x2) and torch.equal(y, y2) for (x, y), (x2, y2) in zip(first, again, strict=True))
    for other in (epoch(a, 2, 3), epoch(a, 1, 4)):
        assert not torch.equal(torch.cat([y for _, y in first]), torch.cat([y for _, y in other]))
    plain = epoch(a, 1, 3, "none")  # no augmentation: the images themselves, shuffled in the same order
    assert all(torch.equal(x, a.floats(y)) for x, y in plain)
    assert torch.equal(torch.cat([y for _, y in plain]), torch.cat([y for _, y in first]))


def test_flip_only_never_shifts():
    split = random_split(300)
    flipped = 0
    for x, y in split.train_epoch(100, "flip", seed=0, epoch=0, device="cpu"):
        same, mirrored = (x == split.floats(y)).flatten(1).all(1), (x == split.floats(y).flip(-1)).flatten(1).all(1)
        assert (same | mirrored).all()
        flipped += int(mirrored.sum())
    assert 100 < flipped < 200


def test_ranks_shard_one_permutation():
    split = random_split(101)
    ranks = [split.train_epoch(16, "crop-flip", seed=0, epoch=2, device="cpu", rank=r, world=3) for r in range(3)]
    labels = [torch.cat([y for _, y in r]) for r in ranks]
    assert [len(r) for r in ranks] == [3, 3, 3] and all(len(y) == 34 for y in labels)  # ceil(101 / 3) each
    together = torch.cat(labels)
    assert set(together.tolist()) == set(range(101)) and len(together) == 102  # one image served twice (wrap)
    order = torch.randperm(101, generator=generator(torch.device("cpu"), 0, 2, "order"))
    assert torch.equal(torch.stack(labels, 1).flatten()[:101], order)  # rank r takes every 3rd from r


def test_draws_cover_the_range():
    offsets, flips = draw(5000, PAD, True, generator(torch.device("cpu"), 0))
    assert offsets.min() == 0 and offsets.max() == 2 * PAD and flips.dtype == torch.bool
    assert draw(10, 0, False, generator(torch.device("cpu"), 0))[1] is None


def test_resized_crop_on_an_in_memory_split_goes_image_by_image_and_reproduces():
    """resized-crop-flip has no batch-wise form: an in-memory split serves it through torchvision per image, one
    epoch is each image once (labels are a permutation), same seed and epoch give the same batches, and the
    images are resampled (not the uint8 originals)."""
    split = random_split(20, channels=3, size=8)

    def epoch(seed: int, e: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        torch.manual_seed(seed * 1000 + e)  # the training loop seeds the global generator per epoch
        return list(split.train_epoch(8, "resized-crop-flip", seed, e, "cpu"))

    first, again, other = epoch(0, 0), epoch(0, 0), epoch(0, 1)
    assert len(first) == len(split.train_epoch(8, "resized-crop-flip", 0, 0, "cpu")) == 3
    assert sorted(torch.cat([y for _, y in first]).tolist()) == list(range(20))
    assert all(torch.equal(a, b) and torch.equal(ya, yb) for (a, ya), (b, yb) in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for (a, _), (b, _) in zip(first, other, strict=True))
    x, y = first[0]
    assert x.dtype == torch.float32 and x.shape[1:] == (3, 8, 8) and 0 <= x.min() and x.max() <= 1
    originals = split.floats(y)
    assert not torch.equal(x, originals)
