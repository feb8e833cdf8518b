"""Scoring: the cross-model matrix (defense rate, agreement, relation) and the papers' probes."""

from robench.scoring.examples import set_examples
from robench.scoring.folder import folder_scores
from robench.scoring.matrix import COLUMNS, attack_label, cell_scores, matrix, merge, relation, select
from robench.scoring.paired import Comparison, compare
from robench.scoring.probes import (
    DEFAULT_KS,
    DEFAULT_SIGMAS,
    boundary_score,
    boundary_scores,
    boundary_values,
    noise_curve,
    patch_shuffle,
    shuffle_curve,
    tradeoff,
)
from robench.scoring.replicates import by_config
from robench.scoring.whitebox import autoattack_scores

__all__ = [
    "COLUMNS", "Comparison", "DEFAULT_KS", "DEFAULT_SIGMAS", "attack_label", "autoattack_scores",
    "boundary_score", "by_config", "compare", "boundary_scores", "boundary_values",
    "cell_scores", "folder_scores", "matrix", "merge", "noise_curve", "patch_shuffle", "relation", "select",
    "set_examples", "shuffle_curve", "tradeoff",
]
