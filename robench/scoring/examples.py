"""Example figures of a saved set: clean vs adversarial images with a model's predictions."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

from robench import store
from robench.checks import checked
from robench.context import takes_context
from robench.errors import RobenchError
from robench.models import load_model
from robench.reports.plots import DPI, Target, examples_grid, pick
from robench.runtime import pick_device, predict


@checked
@takes_context
def set_examples(set_name: str, path: Target, *, workspace: str | os.PathLike | None = None,
                 models: str | None = None, n: int = 8, seed: int = 0, device: str | None = None,
                 fmt: str | None = None, dpi: int = DPI) -> Path | IO[bytes]:
    """An examples grid of ``n`` seeded picks from a saved set, with the predictions of ``models`` (one model: a
    name or a pattern matching one; default: the source's stored predictions on the adversarial images); class
    names where the data has them."""
    advset = store.load_set(set_name, workspace)
    if len(advset) == 0:
        raise RobenchError(f"set '{set_name}' is empty; nothing to show")
    chosen = pick(len(advset), n, seed)
    clean, adv, labels = advset.clean[chosen], advset.adv[chosen], advset.labels[chosen]
    if models:
        model = _one_model(models, workspace)
        net = load_model(model, workspace, device=pick_device(device))
        clean_pred, adv_pred, who = predict(net, clean), predict(net, adv), model
    else:
        clean_pred, adv_pred, who = None, advset.source_pred[chosen], "source"
    classes = list(advset.record.dataset.classes) if advset.record.dataset.classes else None
    title = f"{set_name} ({advset.record.method}); predictions of {who}"
    return examples_grid(clean, adv, labels, adv_pred, path, clean_pred, title, classes, fmt=fmt, dpi=dpi)


def _one_model(pattern: str, workspace: str | os.PathLike | None) -> str:
    """The one workspace model a name or pattern picks."""
    from robench.scoring.matrix import select

    found = select(store.list_model_names(workspace), pattern, "model", workspace)
    if len(found) != 1:
        raise RobenchError(f"'{pattern}' matches {len(found)} models ({', '.join(found)}); name one")
    return found[0]
