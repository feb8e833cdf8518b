"""Image-folder trees of any size: scanning and checks, decoding with DataLoader workers, and streamed splits.

A tree is ``ROOT/train/<class>/*`` and ``ROOT/test/<class>/*`` (torchvision's ImageFolder layout, any image
format PIL reads). Grayscale trees load as one channel: a tree is grayscale when every image in a sample of
its training images is single-channel.

**In memory or streamed** (:func:`load_folder`, ``stream=None``): a tree is decoded once into a uint8
:class:`~robench.datasets.splits.Split` (its images' own size, the in-memory path CIFAR-sized folders take) when a
sample of its images all share one size and all its images at that size take at most :data:`MEMORY_BUDGET` bytes
(2 GiB of uint8); otherwise it is streamed: a :class:`StreamedSplit` keeps only the file list and labels in
memory and decodes images on demand in DataLoader workers, with the usual ImageNet transforms at
``image_size`` (default 224):

- evaluation: resize the shorter side to ``round(image_size * 256 / 224)``, centre crop ``image_size``;
- training (``resized-crop-flip``, the default for streamed folders): ``RandomResizedCrop(image_size)``
  (scale 0.08-1, ratio 3/4-4/3) and a horizontal flip. ``none``, ``flip`` and ``crop-flip`` apply to the
  evaluation view instead (the transforms: :mod:`robench.datasets.augment`).

``stream=True`` / ``False`` overrides the rule. A corrupt or unreadable image is an error naming the file,
whichever path reads it (in memory: when the tree is loaded; streamed: when the file is first reached).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler
from torchvision.transforms import v2

from robench.datasets.augment import eval_transform, in_memory_augment, resize_for, stream_transform
from robench.datasets.splits import DatasetInfo, OnDevice, Split, epoch_seed
from robench.errors import RobenchError
from robench.runtime import to_device

log = logging.getLogger(__name__)

MEMORY_BUDGET = 2 * 1024**3  # bytes of uint8 images (both splits) up to which a same-size tree is held in memory
DEFAULT_IMAGE_SIZE = 224
MODE_SAMPLE = 64  # training images looked at to decide grayscale vs colour, and whether all share one size
MEAN_SAMPLE = 2048  # training images a streamed split's per-pixel mean is computed from
BATCH_BYTES = 128 * 1024**2  # a streamed split's evaluation batches hold at most this many bytes of float32
_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def default_workers() -> int:
    """$ROBENCH_WORKERS, else one fewer than the CPU cores this process may use, at most 8."""
    env = os.environ.get("ROBENCH_WORKERS")
    if env:
        return check_workers(int(env) if env.strip().isdigit() else -1)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(0, min(8, cores - 1))


def check_workers(workers: int | None) -> int:
    """``workers`` checked (>= 0), or the default when None."""
    if workers is None:
        return default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise RobenchError(f"--workers must be a whole number >= 0 (0 decodes in the main process), got {workers}")
    return workers


# ---------------------------------------------------------------- scanning


@dataclass
class Tree:
    """One split's folder: class names (sorted), image paths relative to ``root`` and labels (N,) int64.

    Paths are kept as one fixed-width bytes array, not a list of str: DataLoader workers then share it
    without copying (no per-object reference counts to touch), which matters for 1.28 M files.
    """

    root: Path
    classes: list[str]
    paths: np.ndarray
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def path(self, i: int) -> Path:
        return self.root / os.fsdecode(bytes(self.paths[i]))

    @property
    def files(self) -> list[str]:
        return [os.fsdecode(bytes(p)) for p in self.paths]


def scan(path: Path, what: str = "split") -> Tree:
    """The images under ``path/<class>/...``: one subfolder per class, none of them empty."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset

    if not path.is_dir():
        raise RobenchError(f"{path} is not a folder; the {what} needs one subfolder of images per class")
    classes = sorted(e.name for e in os.scandir(path) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise RobenchError(f"no class folders under {path}; it needs one subfolder of images per class")
    samples = make_dataset(str(path), {c: i for i, c in enumerate(classes)}, extensions=IMG_EXTENSIONS,
                           allow_empty=True)
    found = {y for _, y in samples}
    empty = [c for i, c in enumerate(classes) if i not in found]
    if empty:
        raise RobenchError(f"class folder {path / empty[0]} has no images"
                           f"{f' (nor do {len(empty) - 1} more)' if len(empty) > 1 else ''}; add images "
                           f"({', '.join(IMG_EXTENSIONS[:4])} ...) or remove the folder")
    prefix = len(str(path)) + 1
    paths = np.array([os.fsencode(p[prefix:].replace(os.sep, "/")) for p, _ in samples], dtype=bytes)
    return Tree(path, classes, paths, torch.tensor([y for _, y in samples], dtype=torch.int64))


def check_same_classes(train: Tree, test: Tree) -> None:
    if train.classes != test.classes:
        only_train = sorted(set(train.classes) - set(test.classes))
        only_test = sorted(set(test.classes) - set(train.classes))
        parts = [f"{test.root} lacks {few(only_train)}" if only_train else "",
                 f"{train.root} lacks {few(only_test)}" if only_test else ""]
        raise RobenchError(f"train and test have different class folders: {'; '.join(p for p in parts if p)}; "
                           f"give both splits the same class folders")


def few(names: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _sample(n: int, k: int) -> list[int]:
    """Up to k positions spread evenly over range(n)."""
    return sorted({int(i) for i in np.linspace(0, n - 1, min(n, k))}) if n else []


def _header(path: Path) -> tuple[str, tuple[int, int]]:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.mode, im.size
    except Exception as err:  # PIL raises many kinds for a damaged file
        raise _unreadable(path, err) from None


def _unreadable(path: Path, err: BaseException) -> RobenchError:
    reason = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
    return RobenchError(f"cannot read image {path} ({reason}); replace or delete the file")


def tree_mode(tree: Tree) -> str:
    """'L' when every sampled image is single-channel, else 'RGB'."""
    modes = {_header(tree.path(i))[0] for i in _sample(len(tree), MODE_SAMPLE)}
    return "L" if modes <= set(_GRAY_MODES) else "RGB"


def stream_by_default(trees: Sequence[Tree], channels: int) -> tuple[bool, str]:
    """The automatic switch: (stream?, why). In memory when sampled images share one size and fit the budget."""
    sizes = {_header(t.path(i))[1] for t in trees for i in _sample(len(t), MODE_SAMPLE)}
    if len(sizes) > 1:
        shown = ", ".join(f"{w}x{h}" for w, h in sorted(sizes)[:3])
        return True, f"its images differ in size ({shown} ...)"
    w, h = sizes.pop()
    need = sum(len(t) for t in trees) * channels * w * h
    if need > MEMORY_BUDGET:
        return True, f"its {sum(map(len, trees))} images take {need / 2**30:.1f} GiB decoded (> 2 GiB)"
    return False, f"its {sum(map(len, trees))} {w}x{h} images take {need / 2**20:.0f} MiB decoded"


# ---------------------------------------------------------------- decoding


class _Files(Dataset):
    """Images of a tree, decoded one at a time (in DataLoader workers when there are some).

    Items are (uint8 (C, H, W) or None, label, index, error or None); a file PIL cannot read is reported
    as an error item, never raised inside a worker, so the main process can name it in one line. With
    ``seed`` set, each image's random transform is seeded from (seed, index): the result does not depend on
    the number of workers, on the rank, or on the order images are decoded in.
    """

    def __init__(self, tree: Tree, mode: str, transform: Callable | None = None, seed: int | None = None) -> None:
        self.root, self.paths, self.labels = str(tree.root), tree.paths, tree.labels.numpy()
        self.mode, self.transform, self.seed = mode, transform, seed

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor | None, int, int, str | None]:
        from PIL import Image

        path = os.path.join(self.root, os.fsdecode(bytes(self.paths[i])))
        try:
            with Image.open(path) as im:
                image = im.convert(self.mode)
        except Exception as err:  # any decoding failure becomes a one-line error in the main process
            return None, int(self.labels[i]), i, str(_unreadable(Path(path), err))
        if self.transform is not None:
            image = self._transform(image, i)
        return v2.functional.pil_to_tensor(image), int(self.labels[i]), i, None

    def _transform(self, image: Any, i: int) -> Any:
        if self.seed is None:
            return self.transform(image)
        in_worker = torch.utils.data.get_worker_info() is not None
        with torch.random.fork_rng(devices=[], enabled=not in_worker):
            torch.manual_seed(self.seed * 1_000_003 + i)
            return self.transform(image)


def _collate(items: list) -> tuple:
    """Stack a batch; the first unreadable file or a size change becomes ('error', message)."""
    for *_, error in items:
        if error is not None:
            return ("error", error)
    shapes = {tuple(x.shape) for x, *_ in items}
    if len(shapes) > 1:
        return ("sizes", [(tuple(x.shape), i) for x, _, i, _ in items])
    return (torch.stack([x for x, *_ in items]), torch.tensor([y for _, y, _, _ in items]),
            torch.tensor([i for _, _, i, _ in items]))


def _checked(batch: tuple, tree: Tree) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if batch[0] == "error":
        raise RobenchError(batch[1])
    if batch[0] == "sizes":
        raise _sizes_differ(tree, batch[1])
    return batch


def _sizes_differ(tree: Tree, shapes: list[tuple[tuple, int]]) -> RobenchError:
    (a, i), (b, j) = shapes[0], next(s for s in shapes if s[0] != shapes[0][0])
    return RobenchError(f"images differ in size ({a[2]}x{a[1]} in {tree.path(i)}, {b[2]}x{b[1]} in {tree.path(j)}); "
                        f"stream the folder (--stream, resized to --image-size) or resize the images to one size")


def _loader(dataset: Dataset, batch_size: int, workers: int, pin: bool = False, sampler=None) -> DataLoader:
    return DataLoader(dataset, batch_size, sampler=sampler, num_workers=workers, collate_fn=_collate,
                      pin_memory=pin, prefetch_factor=2 if workers else None)


def decode_tree(tree: Tree, mode: str, workers: int = 0) -> Split:
    """Every image of a tree at its own size, as one uint8 (N, C, H, W) in-memory split (workers decode)."""
    dataset = _Files(tree, mode)
    use = workers if len(tree) >= 2048 else 0  # starting workers costs more than a small tree takes to decode
    images, shape = None, None
    for x, _, idx in (_checked(b, tree) for b in _loader(dataset, 256, use)):
        if images is None:
            shape = tuple(x.shape[1:])
            images = torch.empty((len(tree), *shape), dtype=torch.uint8)
        elif tuple(x.shape[1:]) != shape:
            raise _sizes_differ(tree, [(shape, 0), (tuple(x.shape[1:]), int(idx[0]))])
        images[idx] = x
    return Split(images, tree.labels, tree.files)


# ---------------------------------------------------------------- the streamed split


class Epoch(OnDevice):
    """One epoch of training batches from a DataLoader of (uint8 images, labels, index) batches, checked and
    converted: (x float32 (b, C, H, W) in [0,1], y (b,)) on the device."""

    def __init__(self, loader: DataLoader, tree: Tree, device: torch.device) -> None:
        super().__init__(loader, device)
        self.tree = tree

    def convert(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        x, y, _ = _checked(batch, self.tree)
        return to_device(x, self.device).float().div_(255), y.to(self.device, non_blocking=True)


class StreamedSplit:
    """A split read from image files on demand: labels (N,) in memory, images decoded when asked for.

    The same interface as :class:`~robench.datasets.splits.Split`: ``len``, ``labels``, ``shape`` (C, size, size),
    ``floats(index)`` (decodes just those files), ``batches(batch_size)`` (in order, decoded by ``workers``
    DataLoader workers), ``train_epoch(...)`` and ``mean()``. Images go through the evaluation transform
    (:func:`eval_transform`; ``resize`` overrides its resize side).
    """

    in_memory: ClassVar[bool] = False

    def __init__(self, tree: Tree, mode: str, size: int, workers: int = 0, resize: int | None = None) -> None:
        self.tree, self.mode, self.size, self.workers = tree, mode, size, workers
        self.resize = resize or resize_for(size)
        self.labels = tree.labels
        self._eval = _Files(tree, mode, eval_transform(size, self.resize))

    def __len__(self) -> int:
        return len(self.tree)

    def __repr__(self) -> str:
        return f"StreamedSplit({self.tree.root}, {len(self)} images, {self.mode} {self.size}px)"

    @property
    def shape(self) -> tuple[int, int, int]:
        return (1 if self.mode == "L" else 3), self.size, self.size

    @property
    def files(self) -> list[str]:
        return self.tree.files

    def _batch_cap(self) -> int:
        c, h, w = self.shape
        return max(1, BATCH_BYTES // (4 * c * h * w))

    def floats(self, index: slice | torch.Tensor | Sequence[int] | None = None) -> torch.Tensor:
        """Images (n, C, H, W) float32 in [0, 1] of the positions ``index`` (all when None: mind the memory)."""
        positions = range(len(self))[index] if isinstance(index, slice) else (
            range(len(self)) if index is None else torch.as_tensor(index, dtype=torch.int64).flatten().tolist())
        out = torch.empty((len(positions), *self.shape), dtype=torch.float32)
        if len(positions) <= 32 or not self.workers:
            for k, i in enumerate(positions):
                x, *_ = _checked(_collate([self._eval[i]]), self.tree)
                out[k] = x[0].float().div_(255)
            return out
        subset = torch.utils.data.Subset(self._eval, list(positions))
        start = 0
        for batch in _loader(subset, min(256, self._batch_cap()), self.workers):
            x, _, _ = _checked(batch, self.tree)
            out[start:start + len(x)] = x.float().div_(255)
            start += len(x)
        return out

    def batches(self, batch_size: int) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor]]:
        """The split in order as (positions, images (b, C, H, W) float32 in [0,1], labels (b,)) batches.

        Batches hold at most ``batch_size`` images, and fewer when that would exceed 128 MiB of float32.
        """
        size = max(1, min(batch_size, self._batch_cap()))
        start = 0
        for batch in _loader(self._eval, size, self.workers, pin=torch.cuda.is_available()):
            x, y, _ = _checked(batch, self.tree)
            yield slice(start, start + len(y)), x.float().div_(255), y
            start += len(y)

    def train_epoch(self, batch_size: int, augment: str, seed: int, epoch: int, device: torch.device,
                    rank: int = 0, world: int = 1, workers: int | None = None) -> Epoch:
        """One shuffled epoch of augmented batches of ``batch_size`` (per process) on ``device``.

        Shuffled by a generator seeded from (seed, epoch) (DistributedSampler shards under torchrun);
        each image's augmentation is seeded from (seed, epoch, index), so CPU runs are deterministic and
        ``--resume`` is bit-identical, whatever the number of workers.
        """
        es = epoch_seed(seed, epoch)
        dataset = _Files(self.tree, self.mode, stream_transform(augment, self.size, self.resize), seed=es)
        if world > 1:
            sampler = DistributedSampler(dataset, world, rank, shuffle=True, seed=es)
        else:
            sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(es))
        workers = self.workers if workers is None else workers
        return Epoch(_loader(dataset, batch_size, workers, pin=device.type == "cuda", sampler=sampler),
                     self.tree, device)

    def mean(self, limit: int = MEAN_SAMPLE) -> torch.Tensor:
        """Per-pixel mean (C, H, W) of up to ``limit`` training images (a seeded sample), evaluation view."""
        pick = torch.randperm(len(self), generator=torch.Generator().manual_seed(0))[:limit].sort().values
        total = torch.zeros(self.shape, dtype=torch.float64)
        for start in range(0, len(pick), 512):
            total += self.floats(pick[start:start + 512]).sum(0, dtype=torch.float64)
        return (total / max(len(pick), 1)).float()


# ---------------------------------------------------------------- folder datasets


def load_folder(root: Path, download: bool = False, workers: int | None = None, stream: bool | None = None,
                image_size: int | None = None) -> DatasetInfo:
    """The ``folder`` dataset: ROOT/train/<class>/* and ROOT/test/<class>/*, in memory or streamed.

    ``stream``: None decides automatically (see the module doc), True streams at ``image_size`` (default 224),
    False decodes everything into memory at the images' own size.
    """
    if not (root / "train").is_dir() or not (root / "test").is_dir():
        raise RobenchError(f"--dataset folder needs {root}/train and {root}/test, each with one subfolder per "
                           f"class; pass the tree's root with --data-dir")
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int)
                                   or image_size < 8):
        raise RobenchError(f"--image-size must be a whole number of pixels >= 8, got {image_size}")
    workers = check_workers(workers)
    train, test = scan(root / "train", "train split"), scan(root / "test", "test split")
    check_same_classes(train, test)
    mode = tree_mode(train)
    auto = stream is None
    if auto:
        stream, why = stream_by_default([train, test], 1 if mode == "L" else 3)
        log.info("folder %s is %s: %s", root, "streamed" if stream else "read into memory", why)
    if not stream:
        if image_size is not None:
            raise RobenchError(f"--image-size applies to streamed folders, and {root} is read into memory at its "
                               f"images' own size; add --stream to resize it")
        try:
            splits = decode_tree(train, mode, workers), decode_tree(test, mode, workers)
        except RobenchError as err:
            if not (auto and "differ in size" in str(err)):
                raise
            log.warning("%s; streaming the folder at %d px instead", err, DEFAULT_IMAGE_SIZE)
            return load_folder(root, download, workers, True, None)
        if splits[0].shape != splits[1].shape:
            raise RobenchError(f"{root}/train holds {splits[0].shape} images, {root}/test {splits[1].shape}; give "
                               f"both splits one size, or stream the folder (--stream)")
        return DatasetInfo("folder", *splits, len(train.classes), in_memory_augment(splits[0].shape),
                           root=str(root.resolve()), classes=train.classes)
    size = image_size or DEFAULT_IMAGE_SIZE
    train_split, test_split = (StreamedSplit(t, mode, size, workers) for t in (train, test))
    return DatasetInfo("folder", train_split, test_split, len(train.classes), "resized-crop-flip",
                       root=str(root.resolve()), classes=train.classes,
                       options={"stream": True, "image_size": size})


def scan_test_only(path: Path) -> Tree:
    """A test-only folder: ``path/test/<class>/*`` when ``path/test`` exists, else ``path/<class>/*``."""
    if not path.is_dir():
        raise RobenchError(f"{path} is not a folder; pass --data-dir a folder of class subfolders (or of test/)")
    return scan(path / "test" if (path / "test").is_dir() else path, "test folder")


def view(tree: Tree, stream: bool, channels: int, size: int, workers: int) -> StreamedSplit:
    """A test-only tree seen as a model's own test data is: streamed models get the same evaluation transform
    (resize + centre crop at the recorded image size); in-memory ones take images of their input size as they
    are and others resized (shorter side) and centre-cropped to it."""
    resize = None if stream else size
    return StreamedSplit(tree, "L" if channels == 1 else "RGB", size, workers, resize=resize)


__all__ = ["DEFAULT_IMAGE_SIZE", "MEMORY_BUDGET", "StreamedSplit", "Tree", "check_workers", "decode_tree",
           "default_workers", "load_folder", "scan", "scan_test_only", "view"]
