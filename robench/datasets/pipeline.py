"""The training input pipeline of an in-memory split: device-resident images, batch-wise augmentation.

The augmentations with a batch-wise form (:data:`robench.datasets.augment.AUGMENT_STEPS`) run here, on the
training device; which one a name means is :mod:`robench.datasets.augment`'s to say.

The split's images (uint8, or float in [0, 1]) go to the training device once, zero-padded for the random
crop, and stay there for every epoch (:class:`DeviceCache`). Each epoch draws a seeded permutation, then every
sample's crop offset and flip from a seeded ``torch.Generator`` on that device, and builds each batch with one
gather: no per-image Python, no host-to-device copy per step, no host sync. Under torchrun the permutation is
the same on every rank and each rank takes its own shard (``DistributedSampler``'s layout).

Everything is a function of (seed, epoch, rank) and the device, so a resumed run sees the same batches as an
uninterrupted one on the same device. CPU and CUDA draw different (equally uniform) numbers.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from robench.datasets.augment import AUGMENT_STEPS


def generator(device: torch.device, *key: object) -> torch.Generator:
    """A generator on ``device`` seeded from ``key`` (e.g. (seed, epoch, "order")): distinct keys, distinct streams."""
    digest = hashlib.sha256("/".join(map(str, key)).encode()).digest()
    return torch.Generator(device=device).manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def draw(n: int, pad: int, flip: bool, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-sample augmentation draws on ``gen``'s device: crop offsets (n, 2) int64, uniform over
    {0, ..., 2*pad} for (row, column), and flips (n,) bool, each with probability 1/2 (None when not flipping)."""
    device = gen.device
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=gen, device=device)
    flips = torch.randint(0, 2, (n,), generator=gen, device=device).bool() if flip else None
    return offsets, flips


def crop_flip(padded: torch.Tensor, index: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor | None,
              pad: int) -> torch.Tensor:
    """Crops (B, C, H, W) of images ``padded`` (N, C, H + 2*pad, W + 2*pad), gathered in one indexing operation.

    Sample b is image ``index[b]`` cropped at rows ``offsets[b, 0]:+H``, columns ``offsets[b, 1]:+W`` of its
    padded version, then mirrored left-right where ``flips[b]``. Same dtype and device as ``padded``.
    """
    n, channels, hp, wp = padded.shape
    h, w = hp - 2 * pad, wp - 2 * pad
    sn, sc, sh, sw = padded.stride()
    # a view (no copy) of every crop: windows[i, :, r, c] is padded[i, :, r:r+H, c:c+W]
    windows = padded.as_strided((n, channels, 2 * pad + 1, 2 * pad + 1, h, w), (sn, sc, sh, sw, sh, sw))
    crops = windows[index, :, offsets[:, 0], offsets[:, 1]]
    return crops if flips is None else torch.where(flips[:, None, None, None], crops.flip(3), crops)


def shard(order: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """This rank's positions of ``order``: padded by wrapping to a multiple of ``world``, then every world-th
    from ``rank`` (as ``torch.utils.data.DistributedSampler``), so every rank gets the same number."""
    if world <= 1:
        return order
    total = math.ceil(len(order) / world) * world
    wrapped = order.repeat(math.ceil(total / max(len(order), 1)))[:total]
    return wrapped[rank:total:world]


def to_float(x: torch.Tensor) -> torch.Tensor:
    """Images as float32 in [0, 1] (uint8 divided by 255); channels_last on CUDA, where models run in it."""
    layout = torch.channels_last if x.is_cuda else torch.contiguous_format
    y = x.to(torch.float32, memory_format=layout)
    return y.div_(255) if x.dtype == torch.uint8 else y


@dataclass
class DeviceCache:
    """One split's images and labels on one device, zero-padded by ``pad``: built once, reused every epoch.

    Holds a single entry (a new device or padding replaces it), so device memory stays at one copy.
    """

    key: tuple | None = None
    images: torch.Tensor | None = field(default=None, repr=False)
    labels: torch.Tensor | None = field(default=None, repr=False)

    def get(self, images: torch.Tensor, labels: torch.Tensor, device: torch.device,
            pad: int) -> tuple[torch.Tensor, torch.Tensor]:
        key = (str(device), pad, images.data_ptr(), tuple(images.shape), images.dtype)
        if self.key != key:
            self.key = self.images = self.labels = None  # free the old copy before making the new one
            x = images.to(device)
            self.images = F.pad(x, (pad,) * 4) if pad else x
            self.labels = labels.to(device)
            self.key = key
        return self.images, self.labels


class DeviceEpoch:
    """One training epoch of an in-memory split as (x, y) batches on ``device``.

    x: (b, C, H, W) float32 in [0, 1], augmented; y: (b,) int64. ``len()`` is the number of batches; nothing is
    moved or drawn until iteration starts.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, cache: DeviceCache, *, batch_size: int,
                 augment: str, seed: int, epoch: int, device: torch.device, rank: int = 0, world: int = 1) -> None:
        self.images, self.labels, self.cache = images, labels, cache
        self.pad, self.flip = AUGMENT_STEPS[augment]
        self.batch_size, self.seed, self.epoch = batch_size, seed, epoch
        self.device, self.rank, self.world = torch.device(device), rank, world

    @property
    def samples(self) -> int:
        """Images this rank sees in the epoch."""
        n = len(self.labels)
        return n if self.world <= 1 else math.ceil(n / self.world)

    def __len__(self) -> int:
        return math.ceil(self.samples / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        images, labels = self.cache.get(self.images, self.labels, self.device, self.pad)
        order_gen = generator(self.device, self.seed, self.epoch, "order")  # the same on every rank
        order = torch.randperm(len(labels), generator=order_gen, device=self.device)
        index = shard(order, self.rank, self.world)
        augmented = self.pad or self.flip
        if augmented:
            offsets, flips = draw(len(index), self.pad, self.flip,
                                  generator(self.device, self.seed, self.epoch, "augment", self.rank))
        for start in range(0, len(index), self.batch_size):
            sl = slice(start, start + self.batch_size)
            idx = index[sl]
            x = crop_flip(images, idx, offsets[sl], None if flips is None else flips[sl], self.pad) if augmented \
                else images[idx]
            yield to_float(x), labels[idx]
