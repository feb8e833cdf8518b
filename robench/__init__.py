"""robench: benchmark how well image classifiers resist adversarial examples.

Everything the CLI does is available from Python::

    import robench
    meta = robench.train("resnet18", dataset="digits", width=16, keep=0.1, preset="quick")
    model = robench.load_model(meta["name"])
"""

__version__ = "0.1.0"

from robench.api import list_workspace_models, load_model, load_set, train  # noqa: E402
from robench.attacks import attack, list_sets  # noqa: E402
from robench.errors import RobenchError  # noqa: E402
from robench.models import create_model, list_models, register_model  # noqa: E402
from robench.scoring import boundary_scores, matrix, noise_curve, shuffle_curve, tradeoff  # noqa: E402

__all__ = [
    "RobenchError", "__version__", "attack", "create_model", "list_models", "list_sets", "list_workspace_models",
    "load_model", "load_set", "matrix", "register_model", "train", "boundary_scores", "noise_curve",
    "shuffle_curve", "tradeoff",
]
