"""The white-box reference: each model's robust accuracy under AutoAttack, as RobustBench reports it.

Robust accuracy on the first ``n`` test images = the fraction the model classifies correctly after the attack.
Images it already gets wrong count as not robust; only the correct ones are attacked (AutoAttack's
``run_standard_evaluation`` does the same). The attack is the ``autoattack`` method of the attack registry:
APGD-CE, APGD-T, FAB-T and Square with the original's settings (see ``robench.attacks.torchattacks_backend``).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from typing import Any

import pandas as pd
import torch

from robench import store
from robench.attacks import method_spec, perturb
from robench.attacks.registry import resolve_params
from robench.checks import checked
from robench.context import takes_context
from robench.errors import RobenchError
from robench.events import emitter
from robench.scoring.matrix import Callback, Patterns, Scorer, select
from robench.stats import CI_LEVEL, add_rate_ci, check_ci

log = logging.getLogger(__name__)

COLUMNS = ["model", "clean_accuracy", "robust_accuracy", "n", "eps", "norm", "attacks", "steps", "queries", "arch",
           "keep", "placement", "precision", "ci_low", "ci_high", "ci_method", "ci_level"]


def _robust(scorer: Scorer, name: str, n: int, params: dict, seed: int, batch_size: int,
            tick: Callable[[float, str], None] | None = None) -> tuple[float, float, int]:
    """(clean accuracy, robust accuracy, images) of model ``name`` on the first ``n`` test images; ``tick(fraction,
    info)`` reports the fraction of the images done.

    The test split is read in batches of ``batch_size`` (a streamed folder is decoded only that far, one batch in
    memory at a time); each batch's correctly classified images are attacked together."""
    data = scorer.dataset(name)
    count = min(n, len(data.test))
    model, correct, robust = scorer.model(name), 0, 0
    for sl, x, y in data.test.batches(batch_size):
        if sl.start >= count:
            break
        x, y = x[:count - sl.start], y[:count - sl.start]
        if tick:
            tick(sl.start / count, f"{name}: AutoAttack on images {sl.start + 1}-{sl.start + len(y)} of {count}")
        hit = (scorer.predict(name, x) == y).nonzero().flatten()
        correct += len(hit)
        if not len(hit):
            continue
        adv = perturb(model, x[hit], y[hit], "autoattack", seed=seed, precision=scorer.precision, **params).cpu()
        delta = (adv - x[hit]).flatten(1)
        size = delta.abs().amax(1) if params["norm"] == "linf" else delta.norm(dim=1)
        if (size > params["eps"] + 1e-5).any():
            raise RobenchError(f"AutoAttack returned perturbations larger than eps on {name}; please report this")
        robust += int((scorer.predict(name, adv) == y[hit]).sum())
    return correct / count, robust / count, count


@checked
@takes_context
def autoattack_scores(
    models: Patterns = "*",
    workspace: str | os.PathLike | None = None,
    *,
    n: int = 1000,
    eps: float | str | None = None,
    norm: str = "linf",
    seed: int = 0,
    batch_size: int = 256,
    device: str | None = None,
    data_dir: str | os.PathLike | None = None,
    callback: Callback | None = None,
    precision: str = "fp32",
    workers: int | None = None,
    ci: str = "wilson",
    ci_level: float = CI_LEVEL,
    **attack_params: Any,
) -> pd.DataFrame:
    """Robust accuracy of every model under AutoAttack (standard version; eps 8/255 Linf unless given).

    ``attack_params`` are the ``autoattack`` method's other parameters: ``attacks`` (a subset of
    apgd-ce,apgd-t,fab-t,square), ``steps`` (100) and ``queries`` (5000); anything but the defaults is no longer
    the standard version. ``precision``: the autocast dtype of every forward pass (attack and predictions);
    ``workers``: DataLoader workers that decode a streamed folder's test images.
    Columns: see ``COLUMNS`` (accuracies are fractions of the n images; ci_low/ci_high: the ``ci_level``
    interval of the robust accuracy by ``ci``, see :mod:`robench.stats`).
    """
    check_ci(ci, ci_level)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise RobenchError(f"--n must be a positive number of test images, got {n}")
    params = resolve_params(method_spec("autoattack"), eps=eps, norm=norm, **attack_params)
    params = {k: v for k, v in params.items() if k != "targeted"}
    scorer = Scorer(workspace, device, data_dir, precision=precision, workers=workers)
    names = select(store.list_model_names(workspace), models, "model", workspace)
    rows = []
    emit = emitter(callback)
    emit("start", {"label": "autoattack", "total": len(names), "done": 0})
    with torch.random.fork_rng(devices=[scorer.device] if scorer.device.type == "cuda" else []):
        for i, name in enumerate(names):
            def tick(fraction: float, info: str, i: int = i) -> None:
                emit("batch", {"done": i + fraction, "info": info})

            clean, robust, count = _robust(scorer, name, n, params, seed, batch_size, tick)
            rows.append({"model": name, "clean_accuracy": clean, "robust_accuracy": robust, "n": count,
                         "eps": params["eps"], "norm": params["norm"], "attacks": params["attacks"],
                         "steps": params["steps"], "queries": params["queries"], **scorer.model_columns(name),
                         "precision": scorer.precision})
            log.info("autoattack %s: clean %.4f robust %.4f on %d images", name, clean, robust, count)
            emit("step", {"done": i + 1, "model": name, "info": f"{name}: robust {robust:.2%}"})
    df = add_rate_ci(pd.DataFrame(rows, columns=COLUMNS), "robust_accuracy", "", ci, ci_level)
    return df.assign(ci_method=ci, ci_level=ci_level if ci != "none" else math.nan)
