"""The value choices the CLI offers, gathered where ``robench --help`` can read them.

Architectures, attack methods, augmentations and the ``robench import`` SPEC forms come from their registries, all
readable without torch. Datasets, presets and precisions are mirrored here from ``robench.datasets``,
``robench.training`` and ``robench.runtime`` (tests/test_cli_conventions.py checks they agree).
"""

from __future__ import annotations

from robench.attacks.registry import BACKENDS as _BACKENDS
from robench.attacks.registry import NORMS, list_methods, method_spec
from robench.datasets.augment import AUGMENTS
from robench.importers import FORMS
from robench.models import MASK_MODES, PLACEMENTS, REGULARIZERS, list_models, model_entry

ARCHITECTURES = tuple(list_models())
METHODS = tuple(list_methods())
BACKENDS = tuple(sorted(_BACKENDS))
LOSSES = tuple(sorted({c for m in METHODS for c in method_spec(m).choices.get("loss", ())}))
DATASETS = ("cifar10", "cifar100", "digits", "fashion-mnist", "folder", "mnist", "tiny-imagenet")
PRESETS = ("paper", "quick", "fast")
PRECISIONS = ("fp32", "bf16", "fp16")
BOUNDARY_MODES = ("auto", "sets", "attack")
CELL_VALUES = ("defense_rate", "agreement", "target_hit_rate")  # the matrix's rates a table or heatmap shows
FIGURE_FORMATS = ("png", "svg", "pdf", "eps")
IMPORT_FORMS = tuple(FORMS.values())
PLACEMENT_HELP = tuple((n, model_entry(n).bottom, model_entry(n).top) for n in ARCHITECTURES)
__all__ = ["ARCHITECTURES", "AUGMENTS", "BACKENDS", "BOUNDARY_MODES", "CELL_VALUES", "DATASETS", "FIGURE_FORMATS",
           "IMPORT_FORMS", "LOSSES", "MASK_MODES", "METHODS", "NORMS", "PLACEMENTS", "PLACEMENT_HELP", "PRECISIONS",
           "PRESETS", "REGULARIZERS", "method_spec"]
