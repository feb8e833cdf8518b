"""Datasets: one module per concept.

- :mod:`~robench.datasets.registry`: datasets by name (:func:`load_dataset`) and back from a recorded reference
  (:func:`resolve_dataset`);
- :mod:`~robench.datasets.splits`: the split types (:class:`Split` in memory, the :class:`SplitLike` protocol every
  consumer reads through) and :class:`DatasetInfo`, a loaded dataset;
- :mod:`~robench.datasets.augment`: the augmentation names, the one check of a name, every transform;
- :mod:`~robench.datasets.pipeline`: the device-side training pipeline of an in-memory split (batch-wise
  crops and flips on the training device);
- :mod:`~robench.datasets.folders`: image-folder trees of any size, in memory or streamed (:class:`StreamedSplit`).

Names are imported on first use (PEP 562): the augmentation names are read without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from robench._lazy import lazy_exports

_EXPORTS = {
    "DatasetInfo": "splits", "Split": "splits", "SplitLike": "splits",
    "data_dir": "registry", "list_datasets": "registry", "load_dataset": "registry", "register_dataset": "registry",
    "resolve_dataset": "registry",
    "AUGMENTS": "augment",
    "StreamedSplit": "folders",
}
__all__ = ["AUGMENTS", "DatasetInfo", "Split", "SplitLike", "StreamedSplit", "data_dir", "list_datasets",
           "load_dataset", "register_dataset", "resolve_dataset"]

if TYPE_CHECKING:
    from robench.datasets.augment import AUGMENTS
    from robench.datasets.folders import StreamedSplit
    from robench.datasets.registry import data_dir, list_datasets, load_dataset, register_dataset, resolve_dataset
    from robench.datasets.splits import DatasetInfo, Split, SplitLike


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
