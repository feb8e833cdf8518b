"""robench: benchmark how well image classifiers resist adversarial examples.

Everything the CLI does is available from Python, with the same keyword names (a CPU-sized study)::

    import robench
    record = robench.train("tiny", dataset="digits", keep=0.3, preset="quick")   # a robench.ModelRecord
    model = robench.load_model(record.name)                                       # an nn.Module, eval mode
    adv_set = robench.attack(record.name, "pgd", eps="16/255", n=100)             # a robench.SetRecord
    df = robench.matrix(models="*", sets=adv_set.name)                            # one tidy row per cell
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from robench._lazy import lazy_exports
from robench._version import __version__
from robench.errors import RobenchError

# The API is imported on first use (PEP 562): `import robench` and `robench --help` need no torch.
_EXPORTS = {
    "import_model": "api", "list_workspace_models": "api", "load_model": "api", "load_set": "api", "train": "api",
    "train_seeds": "api", "by_config": "scoring", "compare": "scoring",
    "attack": "attacks", "list_sets": "attacks",
    "create_model": "models", "list_models": "models", "register_model": "models",
    "DatasetRef": "records", "ModelRecord": "records", "SetRecord": "records",
    "RunContext": "context", "ModelSpec": "models", "Recipe": "records",
    "autoattack_scores": "scoring", "boundary_scores": "scoring", "folder_scores": "scoring", "matrix": "scoring",
    "noise_curve": "scoring", "shuffle_curve": "scoring", "tradeoff": "scoring",
}
__all__ = [
    "DatasetRef", "ModelRecord", "ModelSpec", "Recipe", "RobenchError", "RunContext", "SetRecord", "__version__",
    "attack", "autoattack_scores",
    "boundary_scores", "create_model", "folder_scores", "import_model", "list_models", "list_sets",
    "list_workspace_models", "load_model", "load_set", "matrix", "noise_curve", "register_model", "shuffle_curve",
    "tradeoff", "train", "train_seeds", "by_config", "compare",
]

if TYPE_CHECKING:
    from robench.api import import_model, list_workspace_models, load_model, load_set, train, train_seeds
    from robench.attacks import attack, list_sets
    from robench.context import RunContext
    from robench.models import ModelSpec, create_model, list_models, register_model
    from robench.records import DatasetRef, ModelRecord, Recipe, SetRecord
    from robench.scoring import (
        autoattack_scores,
        boundary_scores,
        by_config,
        compare,
        folder_scores,
        matrix,
        noise_curve,
        shuffle_curve,
        tradeoff,
    )


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
