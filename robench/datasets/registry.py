"""Datasets as NCHW float32 in [0, 1], with the papers' augmentations.

Built-in: cifar10, cifar100, mnist, fashion-mnist (torchvision, downloaded into the data
directory when missing), tiny-imagenet, ``folder`` (an ImageFolder tree with train/ and test/, held in
memory or streamed from disk: see :mod:`robench.folders`) and ``digits`` (scikit-learn's bundled
handwritten digits: offline, fixed seeded split).

A split is either a :class:`Split` held in memory or a streamed split (:class:`robench.folders.StreamedSplit`);
both offer ``len``, ``labels``, ``shape``, ``floats(index)``, ``batches(batch_size)``, ``train_epoch(...)`` and
``mean()``, and consumers use only those.

Every loaded dataset carries a :class:`~robench.records.DatasetRef` (name, where it was, a fingerprint of
its test split); :func:`resolve_dataset` is the one way back from a recorded reference to the data.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from robench.errors import RobenchError, unknown_name
from robench.pipeline import AUGMENT_STEPS, DeviceCache, DeviceEpoch
from robench.records import DatasetRef
from robench.runtime import to_device

log = logging.getLogger(__name__)

AUGMENTS = ("default", "none", "flip", "crop-flip", "resized-crop-flip")


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
        and flips are drawn there from generators seeded by (seed, epoch[, rank]) (see :mod:`robench.pipeline`).
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
    ``folders.Epoch``)."""

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


@dataclass
class DatasetInfo:
    """A loaded dataset: both splits plus what a model needs to know about it.

    ``root`` is the folder it was read from (None for data bundled with a library); ``options`` the loader
    settings that shape its tensors; ``classes`` the class names when known.
    """

    name: str
    train: Any  # Split, or a streamed split with the same interface
    test: Any
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


def split_fingerprint(split: Split, classes: list[str] | None = None) -> str:
    """sha256 of a split: class names, then its file list and labels (files) or its arrays (no files)."""
    digest = hashlib.sha256("\n".join(classes or []).encode())
    if split.files is not None:
        for f, y in zip(split.files, split.labels.tolist(), strict=True):
            digest.update(f"{y}\t{f}\n".encode())
    else:
        digest.update(split.images.contiguous().numpy().tobytes())
        digest.update(split.labels.contiguous().numpy().tobytes())
    return digest.hexdigest()


_LOADERS: dict[str, Callable[..., DatasetInfo]] = {}


def register_dataset(name: str) -> Callable:
    def wrap(fn: Callable[[Path, bool], DatasetInfo]) -> Callable:
        if name in _LOADERS:
            raise ValueError(f"dataset '{name}' is already registered")
        _LOADERS[name] = fn
        return fn

    return wrap


def list_datasets() -> list[str]:
    return sorted(_LOADERS)


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """The data directory: the argument, else $ROBENCH_DATA, else ~/.cache/robench/data."""
    return Path(path or os.environ.get("ROBENCH_DATA") or Path.home() / ".cache" / "robench" / "data")


def load_dataset(name: str, root: str | os.PathLike | None = None, download: bool = True, *,
                 workers: int | None = None, **options: Any) -> DatasetInfo:
    """Load a dataset by name from ``root`` (default: :func:`data_dir`); ``options`` go to its loader.

    ``workers``: DataLoader workers that decode image files (default: from the core count, see
    :func:`robench.folders.default_workers`); datasets held as arrays ignore it. Options that are None are
    left to the loader's defaults; an option the dataset does not take is an error.
    """
    if name not in _LOADERS:
        raise unknown_name("dataset", name, _LOADERS)
    loader = _LOADERS[name]
    options = {k: v for k, v in options.items() if v is not None}
    accepted = set(inspect.signature(loader).parameters)
    unknown = sorted(set(options) - accepted)
    if unknown:
        flags = ", ".join("--" + k.replace("_", "-") for k in unknown)
        raise RobenchError(f"{flags} does not apply to dataset {name} (only to an image folder: --dataset folder)")
    if "workers" in accepted:
        options["workers"] = workers
    return loader(data_dir(root), download, **options)


TREES = ("folder",)  # datasets whose root IS the data (a user's image tree), not a download folder
# loader options a reference recorded before they existed: a folder recorded without "stream" was in memory
_RECORDED_DEFAULTS: dict[str, dict[str, Any]] = {"folder": {"stream": False}}


def _candidates(ref: DatasetRef, given: str | os.PathLike | None) -> list[Path]:
    """Where to look for a recorded dataset: the given data folder first, then where it was recorded."""
    found: list[Path] = []
    if given:
        found.append(Path(given))
        if ref.name in TREES and ref.root:
            found.append(Path(given) / Path(ref.root).name)  # a data folder holding the tree by name
    if ref.root:
        found.append(Path(ref.root))
    if not given and ref.name not in TREES:
        found.append(data_dir())
    return found


def _is_tree(path: Path) -> bool:
    return (path / "train").is_dir() and (path / "test").is_dir()


def resolve_dataset(ref: DatasetRef, data_dir: str | os.PathLike | None = None,
                    download: bool = True, *, workers: int | None = None) -> DatasetInfo:
    """Load the data a reference records, wherever it is now; the one way from a record to a dataset.

    ``data_dir`` (else $ROBENCH_DATA) is looked at first, so a workspace moved to another machine works
    with the data somewhere else; then the recorded location. Data whose test-split fingerprint differs
    from the recorded one is a RobenchError naming both locations. The recorded loader options (e.g. a
    streamed folder's image size) are applied again, so the same test tensors come back.
    """
    given = data_dir or os.environ.get("ROBENCH_DATA")
    candidates = _candidates(ref, given)
    if ref.name in TREES:
        trees = [c for c in candidates if _is_tree(c)]
        if not trees:
            looked = ", ".join(dict.fromkeys(str(c) for c in candidates))
            raise RobenchError(f"the {ref.label} data recorded at {ref.root} is not there (looked in {looked}); "
                               f"pass --data-dir (or set ROBENCH_DATA) to the folder that holds its train/ and test/")
        root = trees[0]
    else:
        root = next((c for c in candidates if c.is_dir()), candidates[0]) if candidates else None
    options = {**_RECORDED_DEFAULTS.get(ref.name, {}), **ref.options}
    info = load_dataset(ref.name, root, download, workers=workers, **options)
    if ref.fingerprint and info.fingerprint != ref.fingerprint:
        raise RobenchError(
            f"the {ref.name} data at {info.root or root} differs from the data recorded at "
            f"{ref.root or 'training time'} (test-split fingerprint {info.fingerprint[:12]} vs "
            f"{ref.fingerprint[:12]}); pass --data-dir to a copy of the recorded data")
    return info


def _missing(name: str, root: Path, err: Exception) -> RobenchError:
    return RobenchError(
        f"{name} is not in {root} and could not be downloaded ({type(err).__name__}); download it on a "
        f"connected machine into that directory, or point --data-dir / ROBENCH_DATA at a copy"
    )


def _torchvision(cls_name: str, label: str, num_classes: int, augment: str) -> Callable:
    def load(root: Path, download: bool) -> DatasetInfo:
        import torchvision.datasets as tvd

        cls = getattr(tvd, cls_name)
        try:
            splits = [cls(str(root), train=t, download=download) for t in (True, False)]
        except Exception as err:  # offline: URLError, RuntimeError("Dataset not found"), ...
            raise _missing(label, root, err) from None
        return DatasetInfo(label, *[_from_array(s.data, s.targets) for s in splits], num_classes, augment,
                           root=str(root.resolve()), classes=[str(c) for c in splits[1].classes])

    return load


def _from_array(data, targets) -> Split:
    x = torch.as_tensor(data)
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)  # (N,H,W) or (N,H,W,C) -> NCHW
    return Split(x.contiguous(), torch.as_tensor(targets, dtype=torch.int64))


for _name, _cls, _k, _aug in [
    ("cifar10", "CIFAR10", 10, "crop-flip"),
    ("cifar100", "CIFAR100", 100, "crop-flip"),
    ("mnist", "MNIST", 10, "flip"),
    ("fashion-mnist", "FashionMNIST", 10, "flip"),
]:
    register_dataset(_name)(_torchvision(_cls, _name, _k, _aug))


DIGITS_SIZE = 32


@register_dataset("digits")
def _digits(root: Path, download: bool) -> DatasetInfo:
    """scikit-learn's 1797 real 8x8 handwritten digits, bilinearly upscaled to 32x32, 1 channel.

    Split 80/20, stratified, with a fixed seed (0): the same split on every machine.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = torch.nn.functional.interpolate(x, size=DIGITS_SIZE, mode="bilinear", align_corners=False).clamp_(0, 1)
    y = torch.as_tensor(bunch.target, dtype=torch.int64)
    tr, te = train_test_split(torch.arange(len(y)).numpy(), test_size=0.2, random_state=0, stratify=y.numpy())
    # fingerprint the bundled integer arrays and the split, not the upscaled floats (exact on every machine)
    digest = hashlib.sha256(bunch.images.astype("uint8").tobytes())
    digest.update(bunch.target.astype("int64").tobytes() + te.astype("int64").tobytes())
    return DatasetInfo("digits", Split(x[tr], y[tr]), Split(x[te], y[te]), 10, "none",
                       classes=[str(c) for c in range(10)], _fingerprint=digest.hexdigest())


@register_dataset("tiny-imagenet")
def _tiny_imagenet(root: Path, download: bool, workers: int | None = None) -> DatasetInfo:
    """Tiny-ImageNet-200 (64x64, 200 classes); the labelled val split serves as the test split."""
    from robench.folders import Tree, check_workers, decode_tree, scan, tree_mode

    base = root / "tiny-imagenet-200"
    if not base.exists() and download:
        from torchvision.datasets.utils import download_and_extract_archive

        try:
            download_and_extract_archive("http://cs231n.stanford.edu/tiny-imagenet-200.zip", str(root))
        except Exception as err:
            raise _missing("tiny-imagenet", root, err) from None
    if not base.exists():
        raise _missing("tiny-imagenet", root, FileNotFoundError(base))
    workers = check_workers(workers)
    train = scan(base / "train")
    mode = tree_mode(train)
    val = [line.split("\t")[:2] for line in (base / "val" / "val_annotations.txt").read_text().splitlines()]
    index = {c: i for i, c in enumerate(train.classes)}
    test = Tree(base / "val", train.classes, np.array([os.fsencode(f"images/{f}") for f, _ in val], dtype=bytes),
                torch.tensor([index[w] for _, w in val], dtype=torch.int64))
    return DatasetInfo("tiny-imagenet", decode_tree(train, mode, workers), decode_tree(test, mode, workers),
                       len(train.classes), "crop-flip", root=str(base.resolve()), classes=train.classes)


@register_dataset("folder")
def _folder(root: Path, download: bool, workers: int | None = None, stream: bool | None = None,
            image_size: int | None = None) -> DatasetInfo:
    """Any ImageFolder tree: ROOT/train/<class>/* and ROOT/test/<class>/*, in memory or streamed."""
    from robench.folders import load_folder

    return load_folder(root, download, workers, stream, image_size)


def train_transform(augment: str, size: int) -> v2.Transform | None:
    """The papers' augmentation for one image (C, H, W) held in memory: pad-4 random crop and/or horizontal
    flip, or (``resized-crop-flip``) the ImageNet recipe's random resized crop (scale 0.08-1) and flip."""
    if augment not in AUGMENTS or augment == "default":
        raise RobenchError(f"unknown augmentation '{augment}': choose one of {', '.join(AUGMENTS[1:])}")
    steps = {
        "none": [],
        "flip": [v2.RandomHorizontalFlip()],
        "crop-flip": [v2.RandomCrop(size, padding=4), v2.RandomHorizontalFlip()],
        "resized-crop-flip": [v2.RandomResizedCrop(size), v2.RandomHorizontalFlip()],
    }[augment]
    return v2.Compose(steps) if steps else None


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
