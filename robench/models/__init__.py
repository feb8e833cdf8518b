"""Models: the registry, the defective layer, the network wrapper and one file per architecture family.

Names are imported on first use (PEP 562): the registry's names and choices are read without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from robench._lazy import lazy_exports

_EXPORTS = {
    "MASK_MODES": "registry", "PLACEMENTS": "registry", "REGULARIZERS": "registry", "list_models": "registry",
    "model_entry": "registry", "register_model": "registry",
    "DefectSpec": "defective", "Slot": "defective", "slots": "defective",
    "EnsembleNet": "network", "RobenchNet": "network", "create_model": "network",
    "build": "saved", "load_model": "saved", "register_builder": "saved",
    "ModelSpec": "spec", "default_model_name": "spec",
}
__all__ = ["DefectSpec", "EnsembleNet", "MASK_MODES", "ModelSpec", "PLACEMENTS", "REGULARIZERS", "RobenchNet",
           "Slot", "build", "create_model", "default_model_name", "list_models", "load_model", "model_entry",
           "register_builder", "register_model", "slots"]

if TYPE_CHECKING:
    from robench.models.defective import DefectSpec, Slot, slots
    from robench.models.network import EnsembleNet, RobenchNet, create_model
    from robench.models.registry import MASK_MODES, PLACEMENTS, REGULARIZERS, list_models, model_entry, register_model
    from robench.models.saved import build, load_model, register_builder
    from robench.models.spec import ModelSpec, default_model_name


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
