"""Datasets as NCHW float32 in [0, 1], with the papers' augmentations.

Built-in: cifar10, cifar100, mnist, fashion-mnist (torchvision, downloaded into the data
directory when missing), tiny-imagenet, ``folder`` (an ImageFolder tree with train/ and test/)
and ``digits`` (scikit-learn's bundled handwritten digits: offline, fixed seeded split).

Every loaded dataset carries a :class:`~robench.records.DatasetRef` (name, where it was, a fingerprint of
its test split); :func:`resolve_dataset` is the one way back from a recorded reference to the data.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from robench.errors import RobenchError, unknown_name
from robench.pipeline import AUGMENT_STEPS, DeviceCache, DeviceEpoch
from robench.records import DatasetRef

log = logging.getLogger(__name__)

AUGMENTS = ("default", "none", "flip", "crop-flip")


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
                    rank: int = 0, world: int = 1, workers: int | None = None) -> DeviceEpoch:
        """One shuffled, augmented training epoch as (x, y) batches on ``device``; ``len()`` is its batch count.

        x: (b, C, H, W) float32 in [0, 1]; y: (b,) int64; ``batch_size`` images per batch on this process. The
        split moves to ``device`` once and stays there across epochs; order, crops and flips are drawn there from
        generators seeded by (seed, epoch[, rank]) (see :mod:`robench.pipeline`). Under torchrun (``world`` > 1)
        every rank gets its own shard of one shared permutation. ``augment`` is one of none, flip, crop-flip.
        ``workers`` is ignored: nothing here is per-image work.
        """
        if augment not in AUGMENT_STEPS:
            raise RobenchError(f"unknown augmentation '{augment}': choose one of {', '.join(AUGMENT_STEPS)}")
        return DeviceEpoch(self.images, self.labels, self._device, batch_size=batch_size, augment=augment,
                           seed=seed, epoch=epoch, device=torch.device(device), rank=rank, world=world)


@dataclass
class DatasetInfo:
    """A loaded dataset: both splits plus what a model needs to know about it.

    ``root`` is the folder it was read from (None for data bundled with a library); ``options`` the loader
    settings that shape its tensors; ``classes`` the class names when known.
    """

    name: str
    train: Split
    test: Split
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
        """Per-pixel mean (C, H, W) of the training images in [0, 1]."""
        total = torch.zeros(self.train.images.shape[1:], dtype=torch.float64)
        for start in range(0, len(self.train), 4096):
            total += self.train.floats(slice(start, start + 4096)).sum(0, dtype=torch.float64)
        return (total / len(self.train)).float()



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


def load_dataset(name: str, root: str | os.PathLike | None = None, download: bool = True,
                 **options: Any) -> DatasetInfo:
    """Load a dataset by name from ``root`` (default: :func:`data_dir`); ``options`` go to its loader."""
    if name not in _LOADERS:
        raise unknown_name("dataset", name, _LOADERS)
    return _LOADERS[name](data_dir(root), download, **options)


TREES = ("folder",)  # datasets whose root IS the data (a user's image tree), not a download folder


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
                    download: bool = True) -> DatasetInfo:
    """Load the data a reference records, wherever it is now; the one way from a record to a dataset.

    ``data_dir`` (else $ROBENCH_DATA) is looked at first, so a workspace moved to another machine works
    with the data somewhere else; then the recorded location. Data whose test-split fingerprint differs
    from the recorded one is a RobenchError naming both locations.
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
    info = load_dataset(ref.name, root, download, **ref.options)
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
def _tiny_imagenet(root: Path, download: bool) -> DatasetInfo:
    """Tiny-ImageNet-200 (64x64, 200 classes); the labelled val split serves as the test split."""
    base = root / "tiny-imagenet-200"
    if not base.exists() and download:
        from torchvision.datasets.utils import download_and_extract_archive

        try:
            download_and_extract_archive("http://cs231n.stanford.edu/tiny-imagenet-200.zip", str(root))
        except Exception as err:
            raise _missing("tiny-imagenet", root, err) from None
    if not base.exists():
        raise _missing("tiny-imagenet", root, FileNotFoundError(base))
    train = _image_folder(base / "train")
    classes = train.classes
    val = [line.split("\t")[:2] for line in (base / "val" / "val_annotations.txt").read_text().splitlines()]
    files = [base / "val" / "images" / f for f, _ in val]
    test = _stack_images(files, [classes.index(w) for _, w in val], train.in_mode)
    test.files = [f"images/{f}" for f, _ in val]
    return DatasetInfo("tiny-imagenet", train.split, test, len(classes), "crop-flip", root=str(base.resolve()),
                       classes=classes)


@register_dataset("folder")
def _folder(root: Path, download: bool) -> DatasetInfo:
    """Any ImageFolder tree: ROOT/train/<class>/*.png and ROOT/test/<class>/*.png."""
    if not (root / "train").is_dir() or not (root / "test").is_dir():
        raise RobenchError(
            f"--dataset folder needs {root}/train and {root}/test, each with one subfolder per class; "
            f"pass the tree's root with --data-dir"
        )
    train, test = _image_folder(root / "train"), _image_folder(root / "test")
    if train.classes != test.classes:
        raise RobenchError(f"{root}/train and {root}/test have different class folders; make them match")
    return DatasetInfo("folder", train.split, test.split, len(train.classes), "crop-flip", root=str(root.resolve()),
                       classes=train.classes)


@dataclass
class _Folder:
    split: Split
    classes: list[str]
    in_mode: str


def _image_folder(path: Path) -> _Folder:
    from torchvision.datasets import ImageFolder

    folder = ImageFolder(str(path))
    if not folder.samples:
        raise RobenchError(f"no images found under {path}; it needs one subfolder of images per class")
    from PIL import Image

    with Image.open(folder.samples[0][0]) as first:
        mode = "L" if first.mode in ("L", "1", "I;16", "I") else "RGB"
    split = _stack_images([p for p, _ in folder.samples], folder.targets, mode)
    split.files = [Path(p).relative_to(path).as_posix() for p, _ in folder.samples]
    return _Folder(split, folder.classes, mode)


def _stack_images(files: list, labels: list[int], mode: str) -> Split:
    """Decode image files into a uint8 (N, C, H, W) tensor; grayscale images give one channel."""
    from PIL import Image

    arrays = []
    for f in files:
        with Image.open(f) as im:
            arrays.append(v2.functional.pil_to_tensor(im.convert(mode)))
    sizes = {tuple(a.shape) for a in arrays}
    if len(sizes) != 1:
        raise RobenchError(f"images have different sizes {sorted(sizes)[:3]}...; resize them to one size first")
    return Split(torch.stack(arrays), torch.as_tensor(labels, dtype=torch.int64))


def train_transform(augment: str, size: int) -> v2.Transform | None:
    """The papers' augmentation for one image (C, H, W): pad-4 random crop and/or horizontal flip."""
    if augment not in AUGMENTS:
        raise RobenchError(f"unknown augmentation '{augment}': choose one of {', '.join(AUGMENTS)}")
    steps = {
        "none": [],
        "flip": [v2.RandomHorizontalFlip()],
        "crop-flip": [v2.RandomCrop(size, padding=4), v2.RandomHorizontalFlip()],
    }[augment]
    return v2.Compose(steps) if steps else None


class AugmentedSplit(Dataset):
    """A Split served one image at a time, as float32 [0,1] (C, H, W), with an optional transform.

    Training no longer uses it for in-memory splits (see :meth:`Split.train_epoch`); it remains the per-sample
    baseline of ``benchmarks/bench_train.py``.
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
