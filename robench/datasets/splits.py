"""The split types: what every consumer reads a dataset's images through, and a loaded dataset (two splits).

A split is a :class:`Split` held in memory or a streamed one (:class:`robench.datasets.folders.StreamedSplit`);
both satisfy :class:`SplitLike` (``len``, ``labels``, ``shape``, ``floats(index)``, ``batches(batch_size)``,
``train_epoch(...)``, ``mean()``), and consumers use only that.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import torch
from torch.utils.data import DataLoader, Dataset

from robench.datasets.augment import AUGMENT_STEPS, train_transform
from robench.datasets.pipeline import DeviceCache, DeviceEpoch
from robench.records import DatasetRef
from robench.runtime import to_device

if TYPE_CHECKING:
    from torchvision.transforms import v2


class SplitLike(Protocol):
    """What consumers may use of a split, in memory or streamed. Images are float32 (n, C, H, W) in [0, 1]."""

    in_memory: ClassVar[bool]
    labels: torch.Tensor  # (N,) int64
    files: list[str] | None  # image paths relative to the split's folder, for data read from files

    def __len__(self) -> int: ...

    @property
    def shape(self) -> tuple[int, int, int]: ...

    def floats(self, index: Any = None) -> torch.Tensor: ...

    def batches(self, batch_size: int) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor]]: ...

    def train_epoch(self, batch_size: int, augment: str, seed: int, epoch: int, device: torch.device | str,
                    rank: int = 0, world: int = 1,
                    workers: int | None = None) -> Iterable[tuple[torch.Tensor, torch.Tensor]]: ...

    def mean(self) -> torch.Tensor: ...


STREAM_CHUNK = 1024  # images of a streamed split :func:`images_at` decodes at a time by default


def images_at(split: SplitLike, idx: torch.Tensor, chunk: int | None = None) -> Iterator[tuple[torch.Tensor,
                                                                                              torch.Tensor]]:
    """(images (n, C, H, W) float32 in [0,1], labels (n,)) of the positions ``idx``, in order: in one piece for a
    split held in memory, in chunks of ``chunk`` (default :data:`STREAM_CHUNK`) images for a streamed one."""
    size = max(1, chunk or (len(idx) if split.in_memory else STREAM_CHUNK))
    for start in range(0, len(idx), size):
        part = idx[start:start + size]
        yield split.floats(part), split.labels[part]


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one training epoch's shuffling and augmentation."""
    return seed * 1_000_003 + epoch


@dataclass
class Split:
    """One split held in memory: images (N, C, H, W) uint8 or float in [0,1]; labels (N,) int64.

    ``files`` are the images' paths relative to the split's folder, for datasets read from image files.
    Consumers use :attr:`shape`, :meth:`floats`, :meth:`batches` and :meth:`train_epoch`, which a streamed split
    offers too.
    """

    images: torch.Tensor
    labels: torch.Tensor
    files: list[str] | None = None
    _device: DeviceCache = field(default_factory=DeviceCache, repr=False, compare=False)
    in_memory: ClassVar[bool] = True

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def shape(self) -> tuple[int, int, int]:
        """The shape (C, H, W) of one image."""
        return tuple(self.images.shape[1:])

    def floats(self, index: slice | torch.Tensor | None = None) -> torch.Tensor:
        """Images (n, C, H, W) as float32 in [0, 1]."""
        x = self.images if index is None else self.images[index]
        return x.float().div_(255) if x.dtype == torch.uint8 else x.float()

    def batches(self, batch_size: int) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor]]:
        """The split in order as (positions, images (b, C, H, W) float32 in [0,1], labels (b,)) batches."""
        for start in range(0, len(self), batch_size):
            sl = slice(start, min(start + batch_size, len(self)))
            yield sl, self.floats(sl), self.labels[sl]

    def train_epoch(self, batch_size: int, augment: str, seed: int, epoch: int, device: torch.device | str,
                    rank: int = 0, world: int = 1, workers: int | None = None) -> DeviceEpoch | OnDevice:
        """One shuffled, augmented training epoch as (x, y) batches on ``device``; ``len()`` is its batch count.

        x: (b, C, H, W) float32 in [0, 1]; y: (b,) int64; ``batch_size`` images per batch on this process. For
        none, flip and crop-flip the split moves to ``device`` once and stays there across epochs; order, crops
        and flips are drawn there from generators seeded by (seed, epoch[, rank]) (see
        :mod:`robench.datasets.pipeline`).
        Under torchrun (``world`` > 1) every rank gets its own shard of one shared permutation. resized-crop-flip
        has no batch-wise form: it goes image by image through torchvision (its randomness from torch's global
        generator, which the caller seeds per epoch). ``workers`` is ignored: the images are in memory.
        """
        device = torch.device(device)
        if augment in AUGMENT_STEPS:
            return DeviceEpoch(self.images, self.labels, self._device, batch_size=batch_size, augment=augment,
                               seed=seed, epoch=epoch, device=device, rank=rank, world=world)
        from torch.utils.data import DistributedSampler

        dataset = AugmentedSplit(self, train_transform(augment, self.shape[-1]))
        es = epoch_seed(seed, epoch)
        pin = device.type == "cuda"
        if world == 1:
            loader = DataLoader(dataset, batch_size, shuffle=True, generator=torch.Generator().manual_seed(es),
                                pin_memory=pin)
        else:
            loader = DataLoader(dataset, batch_size, sampler=DistributedSampler(dataset, world, rank, shuffle=True,
                                                                                seed=es), pin_memory=pin)
        return OnDevice(loader, device)

    def mean(self) -> torch.Tensor:
        """Per-pixel mean (C, H, W) of the images in [0, 1]."""
        total = torch.zeros(self.shape, dtype=torch.float64)
        for start in range(0, len(self), 4096):
            total += self.floats(slice(start, start + 4096)).sum(0, dtype=torch.float64)
        return (total / max(len(self), 1)).float()


class OnDevice:
    """A DataLoader's batches as (x, y) on ``device`` (channels_last on CUDA), with its length.

    :meth:`convert` turns one loader batch into (x, y); a loader of other batches overrides it (see
    ``robench.datasets.folders.Epoch``)."""

    def __init__(self, loader: DataLoader, device: torch.device) -> None:
        self.loader, self.device = loader, device

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for batch in self.loader:
            yield self.convert(batch)

    def convert(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch
        return to_device(x, self.device), y.to(self.device, non_blocking=True)


class AugmentedSplit(Dataset):
    """An in-memory Split served one image at a time, as float32 [0,1] (C, H, W), with an optional transform.

    In-memory training uses it only for augmentations with no batch-wise form (resized-crop-flip; see
    :meth:`Split.train_epoch`); it is also the per-sample baseline of ``benchmarks/bench_train.py``.
    """

    def __init__(self, split: Split, transform: v2.Transform | None = None) -> None:
        self.split, self.transform = split, transform

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = self.split.floats(slice(i, i + 1))[0]
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.split.labels[i])


@dataclass
class DatasetInfo:
    """A loaded dataset: both splits plus what a model needs to know about it.

    ``root`` is the folder it was read from (None for data bundled with a library); ``options`` the loader
    settings that shape its tensors; ``classes`` the class names when known.
    """

    name: str
    train: SplitLike
    test: SplitLike
    num_classes: int
    default_augment: str
    root: str | None = None
    classes: list[str] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    _fingerprint: str | None = field(default=None, repr=False)

    @property
    def in_channels(self) -> int:
        return self.test.shape[0]

    @property
    def input_size(self) -> int:
        return self.test.shape[-1]

    @property
    def fingerprint(self) -> str:
        """sha256 of the test split: its file list and labels when read from files, else its arrays."""
        if self._fingerprint is None:
            self._fingerprint = split_fingerprint(self.test, self.classes)
        return self._fingerprint

    @property
    def ref(self) -> DatasetRef:
        """The reference that models and sets record (see :func:`resolve_dataset`)."""
        return DatasetRef(
            name=self.name, num_classes=self.num_classes, in_channels=self.in_channels, input_size=self.input_size,
            n_train=len(self.train), n_test=len(self.test), root=self.root, fingerprint=self.fingerprint,
            classes=tuple(self.classes) if self.classes else None, options=dict(self.options))

    def pixel_mean(self) -> torch.Tensor:
        """Per-pixel mean (C, H, W) of the training images in [0, 1] (a streamed split: of a 2048-image sample)."""
        return self.train.mean()


def split_fingerprint(split: Split | SplitLike, classes: list[str] | None = None) -> str:
    """sha256 of a split: class names, then its file list and labels (files) or its arrays (no files)."""
    digest = hashlib.sha256("\n".join(classes or []).encode())
    if split.files is not None:
        for f, y in zip(split.files, split.labels.tolist(), strict=True):
            digest.update(f"{y}\t{f}\n".encode())
    else:
        digest.update(split.images.contiguous().numpy().tobytes())
        digest.update(split.labels.contiguous().numpy().tobytes())
    return digest.hexdigest()
