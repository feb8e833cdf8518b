"""Models: the registry, the defective layer and one file per architecture family."""

from robench.models import densenet, external, resnet, small, vgg, wrn  # noqa: F401  (registration)
from robench.models.defective import MASK_MODES, PLACEMENTS, REGULARIZERS, DefectSpec, Slot, slots
from robench.models.registry import (
    EnsembleNet,
    RobenchNet,
    create_model,
    list_models,
    model_entry,
    register_model,
)
from robench.models.saved import build, load_model, register_builder

__all__ = [
    "MASK_MODES", "PLACEMENTS", "REGULARIZERS", "DefectSpec", "EnsembleNet", "RobenchNet", "Slot",
    "build", "create_model", "list_models", "load_model", "model_entry", "register_builder", "register_model",
    "slots",
]
