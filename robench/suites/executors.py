"""Which executor runs a suite: a name ("sequential", "ray") and its options over the suite's [executor] section.

A new engine (submitit for SLURM job arrays, say) is one module implementing :class:`~robench.suites.execute.Executor`
and one branch here.
"""

from __future__ import annotations

import logging
from typing import Any

from robench.errors import RobenchError
from robench.suites.execute import Executor, Sequential
from robench.suites.schema import Suite

log = logging.getLogger(__name__)


EXECUTORS = ("sequential", "ray")


def executor_for(suite: Suite, name: str | None = None, **options: Any) -> Executor:
    """The executor a run uses: ``name`` and ``options`` (the [executor] keys: address, num_cpus, num_gpus,
    cpus_per_step, gpus_per_KIND, matrix_shards; None: not given) over the suite's [executor] section."""
    settings = {**suite.executor, **{k: v for k, v in options.items() if v is not None}}
    name = name or settings.pop("name", "sequential")
    settings.pop("name", None)
    if name == "sequential":
        given = sorted(settings)
        if given:
            log.info("the sequential executor ignores %s", ", ".join(given))
        return Sequential()
    if name != "ray":
        raise RobenchError(f"unknown executor '{name}'; use {' or '.join(EXECUTORS)}")
    from robench.suites.ray import KINDS, RayExecutor, Resources

    for key, value in settings.items():
        if key != "address" and value is not None and value < 0:
            raise RobenchError(f"{key.replace('_', '-')} must be 0 or more, got {value}")
    gpus = {k: float(settings[f"gpus_per_{k}"]) for k in KINDS if settings.get(f"gpus_per_{k}") is not None}
    return RayExecutor(settings.get("address"), settings.get("num_cpus"), settings.get("num_gpus"),
                       Resources(float(settings.get("cpus_per_step", 1)), gpus), settings.get("matrix_shards"))
