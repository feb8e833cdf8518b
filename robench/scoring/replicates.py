"""Seed replicates: a matrix's cells averaged over models (and sets) that differ only in their seeds.

Two targets are replicates when their ``target_config`` (construction config without the mask seed, training
recipe) is the same; two sets are replicates when they were made by the same attack configuration against
sources of one configuration (``source_config``). :func:`by_config` groups cells by (attack, source
configuration, target configuration, relation, dataset) and reports per group:

- ``replicates``: the independent units averaged: the distinct target models when there are several, else the
  distinct sets (source seeds). With both sides replicated, a target's cells are first averaged over the source
  replicates, so that each target seed counts once (the crossed cells are not independent);
- the rate (``value``, default ``defense_rate``): the mean over those units; ``std``: their sample standard
  deviation (ddof=1); ``ci_low``/``ci_high``: Student's t interval on the mean across units (see
  :func:`robench.stats.mean_ci`), which measures seed-to-seed variation, not the images' sampling error;
- ``n``: the smallest number of images any of the group's cells rests on; ``members``: the models and sets.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd

from robench.errors import RobenchError
from robench.stats import CI_LEVEL, mean_ci

GROUP = ["attack", "source_config", "target_config", "relation", "dataset"]
RATES = ("defense_rate", "agreement", "target_hit_rate", "target_clean_accuracy")
_SEED = re.compile(r"-seed\d+")


def config_label(names: list[str]) -> str:
    """The name of a configuration: its replicates' names without their ``-seedN`` part (the first, sorted)."""
    stripped = sorted({_SEED.sub("", n) for n in names})
    return stripped[0] if len(stripped) == 1 else sorted(names)[0]


def _prefix(value: str) -> str:
    """The prefix of a rate's interval columns: none for the defense rate, ``agreement_`` for the agreement ..."""
    return "" if value == "defense_rate" else f"{value}_"


def by_config(df: pd.DataFrame, value: str = "defense_rate", level: float = CI_LEVEL) -> pd.DataFrame:
    """The matrix ``df`` with one row per configuration (see the module's doc); rows the same shape as the
    matrix's (target, set, source, attack, relation, n, the rates), plus ``replicates``, ``std``, ``members``."""
    missing = [c for c in [*GROUP, "target", "set", "source", value] if c not in df.columns]
    if missing:
        raise RobenchError(f"--by-config needs the matrix columns {', '.join(missing)}; re-run `robench matrix` "
                           f"(files from before robench recorded configurations lack them)")
    rows = []
    for _, part in df.groupby(GROUP, sort=False, dropna=False):
        targets, sets = sorted(part["target"].unique()), sorted(part["set"].unique())
        unit = "target" if len(targets) > 1 else "set"
        per_unit = part.groupby(unit)[[c for c in RATES if c in part.columns]].mean()
        values = per_unit[value].to_numpy(dtype=float)
        finite = values[np.isfinite(values)]
        low, high = mean_ci(finite, level)
        first = part.iloc[0]
        rows.append({
            "target": config_label(targets), "set": config_label(sets),
            "source": config_label(list(part["source"].unique())), "method": first.get("method"),
            "attack": first["attack"], "params": first.get("params"), "eps": first.get("eps", math.nan),
            "relation": first["relation"], "n": int(part["n"].min()), "replicates": len(finite),
            "replicated": unit + "s", **{c: float(per_unit[c].mean()) for c in per_unit.columns},
            "std": float(np.std(finite, ddof=1)) if len(finite) > 1 else math.nan,
            "value": value, **{f"{_prefix(value)}ci_low": low, f"{_prefix(value)}ci_high": high},
            "ci_method": "t-seeds", "ci_level": level,
            "dataset": first["dataset"], "target_config": first["target_config"],
            "source_config": first["source_config"], "members": json.dumps({"targets": targets, "sets": sets}),
        })
    out = pd.DataFrame(rows)
    if out.duplicated(["attack", "target", "source", "set"]).any():  # two configurations share a name: keep names
        raise RobenchError("two configurations have the same name once '-seedN' is removed; name their models "
                           "apart (e.g. --name) to aggregate them with --by-config")
    return out
