"""Paired comparison of two targets on the same adversarial images: McNemar's exact test.

For a set S and targets A and B, the pairs are S's examples whose clean original BOTH targets classify correctly
(the images on which both defense rates are defined); the outcome of each target on an example is "defended":
its prediction on the adversarial image is the true label. :func:`compare` tabulates the pairs (both
defended, only A, only B, neither) and tests whether A and B defend equally often (see
:func:`robench.stats.mcnemar`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from robench import store
from robench.context import takes_context
from robench.errors import RobenchError
from robench.scoring.matrix import Scorer, mismatch
from robench.stats import CI_LEVEL, PairedTest, mcnemar


@dataclass(frozen=True)
class Comparison:
    """Targets ``a`` and ``b`` on set ``set``: the paired test, and how many of the set's examples were paired."""

    a: str
    b: str
    set: str
    n_set: int
    test: PairedTest

    def to_json(self) -> dict[str, Any]:
        return {"target_a": self.a, "target_b": self.b, "set": self.set, "n_set": self.n_set, **self.test.to_json()}


@takes_context
def compare(target_a: str, target_b: str, set_name: str, workspace: str | os.PathLike | None = None, *,
            device: str | None = None, data_dir: str | os.PathLike | None = None, ci_level: float = CI_LEVEL,
            batch_size: int = 512, use_cache: bool = True, precision: str = "fp32") -> Comparison:
    """McNemar's exact test of ``target_a`` against ``target_b`` on set ``set_name`` (see the module's doc)."""
    if target_a == target_b:
        raise RobenchError(f"compare needs two different targets, got '{target_a}' twice")
    scorer = Scorer(workspace, device, data_dir, batch_size, use_cache, precision=precision)
    srec = store.read_set(set_name, workspace)
    loaded: list[store.AdvSet] = []

    def load() -> store.AdvSet:
        if not loaded:
            loaded.append(store.load_set(srec.path))
        return loaded[0]

    outcomes = {}
    for name in (target_a, target_b):
        reason = mismatch(scorer.record(name), srec)
        if reason:
            raise RobenchError(f"cannot compare on set '{set_name}': {reason}")
        p = scorer.set_predictions(name, srec, load)
        outcomes[name] = (p["clean_pred"] == p["labels"], p["adv_pred"] == p["labels"])
    (clean_a, adv_a), (clean_b, adv_b) = outcomes[target_a], outcomes[target_b]
    both = clean_a & clean_b
    if not bool(both.any()):
        raise RobenchError(f"no example of set '{set_name}' has a clean original that both '{target_a}' and "
                           f"'{target_b}' classify correctly; nothing to compare")
    test = mcnemar(adv_a[both].numpy(), adv_b[both].numpy(), ci_level)
    return Comparison(target_a, target_b, set_name, len(both), test)
