"""The dataset registry: datasets by name (:func:`load_dataset`), and back from a recorded reference
(:func:`resolve_dataset`).

Built-in: cifar10, cifar100, mnist, fashion-mnist (torchvision, downloaded into the data
directory when missing), tiny-imagenet, ``folder`` (an ImageFolder tree with train/ and test/, held in
memory or streamed from disk: see :mod:`robench.datasets.folders`) and ``digits`` (scikit-learn's bundled
handwritten digits: offline, fixed seeded split). A loader returns a :class:`~robench.datasets.splits.DatasetInfo`
whose splits are :class:`~robench.datasets.splits.SplitLike`.

Every loaded dataset carries a :class:`~robench.records.DatasetRef` (name, where it was, a fingerprint of
its test split); :func:`resolve_dataset` is the one way back from a recorded reference to the data.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robench.datasets.folders import Tree, check_workers, decode_tree, load_folder, scan, tree_mode
from robench.datasets.splits import DatasetInfo, Split
from robench.errors import RobenchError, unknown_name
from robench.records import DatasetRef

log = logging.getLogger(__name__)

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
    :func:`robench.datasets.folders.default_workers`); datasets held as arrays ignore it. Options that are None are
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
    return load_folder(root, download, workers, stream, image_size)
