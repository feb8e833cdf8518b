"""Augmentation: the names, the one check, and every transform a training or evaluation image goes through.

``default`` stands for the dataset's own augmentation (:func:`resolve`); the others are the papers':

- ``none``;
- ``flip``: a random horizontal flip (the papers' MNIST recipe);
- ``crop-flip``: a pad-:data:`PAD` random crop and a flip (the papers' CIFAR recipe);
- ``resized-crop-flip``: the ImageNet recipe's random resized crop (scale 0.08-1) and a flip.

Where each runs: an in-memory split does ``none``/``flip``/``crop-flip`` batch-wise on the training device
(:data:`AUGMENT_STEPS`, :mod:`robench.datasets.pipeline`) and ``resized-crop-flip`` image by image
(:func:`train_transform`); a streamed folder decodes and transforms each file in DataLoader workers
(:func:`stream_transform`, on top of the evaluation view :func:`eval_transform`).

Readable without torch (the CLI lists :data:`AUGMENTS`); torchvision is imported when a transform is built.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from robench.errors import RobenchError

if TYPE_CHECKING:
    from torchvision.transforms import v2

AUGMENTS = ("default", "none", "flip", "crop-flip", "resized-crop-flip")
PAD = 4  # the papers' zero padding before the random crop
AUGMENT_STEPS = {"none": (0, False), "flip": (0, True), "crop-flip": (PAD, True)}  # batch-wise: (padding, flip)


def check(augment: str) -> str:
    """``augment`` when it names a concrete augmentation (not ``default``), else the one-line error."""
    if augment not in AUGMENTS or augment == "default":
        raise RobenchError(f"unknown augmentation '{augment}': choose one of {', '.join(AUGMENTS[1:])}")
    return augment


def resolve(augment: str, default: str) -> str:
    """``augment`` with ``default`` standing in for ``"default"`` (a dataset's own), checked."""
    return check(default if augment == "default" else augment)


def in_memory_augment(shape: tuple[int, int, int]) -> str:
    """The default augmentation of an in-memory folder of (C, H, W) images.

    One channel: the papers' MNIST recipe, a random horizontal flip. Colour: the papers' CIFAR recipe, a
    pad-4 random crop and a flip (whatever the size: Tiny-ImageNet's 64 px too).
    """
    return "flip" if shape[0] == 1 else "crop-flip"


def train_transform(augment: str, size: int) -> v2.Transform | None:
    """The augmentation of one image (C, H, W) held in memory (None for ``none``)."""
    from torchvision.transforms import v2

    steps = {
        "none": [],
        "flip": [v2.RandomHorizontalFlip()],
        "crop-flip": [v2.RandomCrop(size, padding=PAD), v2.RandomHorizontalFlip()],
        "resized-crop-flip": [v2.RandomResizedCrop(size), v2.RandomHorizontalFlip()],
    }[check(augment)]
    return v2.Compose(steps) if steps else None


def resize_for(size: int) -> int:
    """The evaluation resize of the ImageNet recipe: shorter side to size * 256/224 (224 -> 256)."""
    return int(math.floor(size * 256 / 224 + 0.5))


def eval_transform(size: int, resize: int | None = None) -> v2.Transform:
    """Resize the shorter side to ``resize`` (default :func:`resize_for`), then centre crop ``size``."""
    from torchvision.transforms import v2

    return v2.Compose([v2.Resize(resize or resize_for(size)), v2.CenterCrop(size)])


def stream_transform(augment: str, size: int, resize: int | None = None) -> v2.Transform:
    """A streamed training image's transform (PIL in, PIL out): ``resized-crop-flip`` from the decoded image,
    the others on top of the evaluation view (:func:`eval_transform`)."""
    from torchvision.transforms import v2

    flip = v2.RandomHorizontalFlip()
    if check(augment) == "resized-crop-flip":
        return v2.Compose([v2.RandomResizedCrop(size), flip])
    base = eval_transform(size, resize)
    return {"none": base, "flip": v2.Compose([base, flip]),
            "crop-flip": v2.Compose([base, v2.RandomCrop(size, padding=PAD), flip])}[augment]
