"""robench: benchmark how well image classifiers resist adversarial examples.

Everything the CLI does is available from Python::

    import robench
    record = robench.train("resnet18", dataset="digits", width=16, keep=0.1, preset="quick")
    model = robench.load_model(record.name)
"""

from robench._version import __version__
from robench.api import import_model, list_workspace_models, load_model, load_set, train
from robench.attacks import attack, list_sets
from robench.errors import RobenchError
from robench.models import create_model, list_models, register_model
from robench.records import DatasetRef, ModelRecord, SetRecord
from robench.scoring import (
    autoattack_scores,
    boundary_scores,
    folder_scores,
    matrix,
    noise_curve,
    shuffle_curve,
    tradeoff,
)

__all__ = [
    "DatasetRef", "ModelRecord", "RobenchError", "SetRecord", "__version__", "attack", "autoattack_scores",
    "boundary_scores", "create_model", "folder_scores", "import_model", "list_models", "list_sets",
    "list_workspace_models", "load_model", "load_set", "matrix", "noise_curve", "register_model", "shuffle_curve",
    "tradeoff", "train",
]
