"""Progress events: what long-running library functions report, and the CLI draws as progress bars.

A function that takes ``callback`` calls ``callback(kind, payload)``. Whatever the producer (training, attacks,
scoring, suites), the payload keys below mean the same thing, so one renderer draws every bar:

- ``start``: a task begins; ``total`` units (None when unknown), ``done`` units already finished (a resumed run);
- any other kind (``batch``, ``cell``, ``step``, ...): progress, with ``done`` units finished so far (a float
  where a unit is done in parts);
- ``end``: the task is over, with the final ``done``.

``label`` names the task (on ``start``) and ``info`` says briefly what is in hand. Producers add their own
keys (loss, accuracy, the model or set in hand) beside these.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypedDict

Callback = Callable[[str, dict[str, Any]], None]


class Progress(TypedDict, total=False):
    """The payload keys every progress event shares."""

    total: int | None
    done: float
    label: str
    info: str


def emitter(callback: Callback | None) -> Callback:
    """``callback``, or a no-op when there is none."""
    return callback or _ignore


def _ignore(kind: str, payload: dict[str, Any]) -> None:
    return None
