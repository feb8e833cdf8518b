"""The Ray executor: every ready step a Ray task, scheduled by the resources its kind asks for.

``robench run SUITE --executor ray`` (or :class:`RayExecutor` given to :func:`robench.suites.run`) starts a local
Ray instance (``num_cpus``, and the GPUs Ray finds) or joins a cluster (``address``: ``auto`` or
``ray://HOST:10001``, after ``ray start``). Each step asks for ``cpus`` CPUs and its kind's GPUs (fractions pack
several small models on one GPU; default: one GPU per step when the cluster has GPUs, none otherwise); torch in the
task uses as many threads as it has CPUs. The matrix is split into shards of its targets, one task each, and
joined into exactly the frame one process makes. Steps run in any worker that sees the workspace (a shared
file system on a cluster); their logs go to ``WORKSPACE/logs/STEP.log``.

Ray is imported only here, so the sequential default never starts it. Install it with ``pip install robench[ray]``.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from robench.errors import RobenchError
from robench.suites.execute import FAILED, Executor, Outcome, execute_step, here, log_path, one_line
from robench.suites.plan import Step
from robench.suites.schema import Suite

log = logging.getLogger(__name__)

KINDS = ("train", "import", "attack", "matrix", "score")


@dataclass
class Resources:
    """What each step asks of a worker: CPUs (all kinds) and GPUs per kind (``train``, ``import``, ``attack``,
    ``matrix`` (per shard), ``score``); a kind not in ``gpus`` gets ``default_gpus``."""

    cpus: float = 1.0
    gpus: dict[str, float] = field(default_factory=dict)
    default_gpus: float = 0.0

    def of(self, step: Step) -> tuple[float, float]:
        """(CPUs, GPUs) for a step."""
        kind = step.kind.split(":")[0]
        return self.cpus, self.gpus.get(kind, self.default_gpus)


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RobenchError("--executor ray needs Ray: pip install 'robench[ray]'") from None
    return ray


def _threads(cpus: float) -> None:
    """torch in this worker uses as many threads as the task has CPUs."""
    import torch

    torch.set_num_threads(max(1, int(cpus)))


def _step_task(suite: Suite, step: Step, device: str | None, cpus: float, progress: Any) -> Outcome:
    _threads(cpus)
    where = here()
    if progress is not None:  # not progress.put: a task blocked in ray.get gives its CPUs back to the scheduler,
        # which then starts one more task than the CPUs there are, so the report is sent without waiting
        progress.actor.put_nowait.remote((step.label, "running", {"where": where}))
    return execute_step(suite, step, device, where=where)


def _shard_task(suite: Suite, step: Step, shard: tuple[int, int], device: str | None, cpus: float) -> Any:
    from robench.suites.execute import _step_log, matrix_part

    _threads(cpus)
    with _step_log(log_path(suite, step)):
        log.info("%s: shard %d/%d on %s", step.label, *shard, here())
        return matrix_part(suite, step, shard, device=device)


def _join_task(suite: Suite, step: Step, started: float, *parts: Any) -> Outcome:
    from robench.suites.execute import DONE, _step_log, finish_matrix

    with _step_log(log_path(suite, step)):
        df = finish_matrix(suite, step, list(parts))
        log.info("%s: %d shards joined", step.label, len(parts))
    return Outcome(step.label, DONE, where=f"{len(parts)} shards", seconds=time.time() - started, result=df)


def _worker_env() -> dict[str, str]:
    """PYTHONPATH for the workers of a Ray started here when they would not import this robench by themselves
    (a checkout or an editable install that is not on $PYTHONPATH, which they inherit); else nothing, since a
    runtime environment slows every worker's start."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if os.path.basename(root) in ("site-packages", "dist-packages") or any(
            os.path.abspath(p) == root for p in path):
        return {}
    return {"PYTHONPATH": os.pathsep.join([root, *path])}


class RayExecutor(Executor):
    """Run each ready step as a Ray task (see the module's docstring).

    ``address``: a running cluster (``auto``, ``ray://...``); None starts Ray here with ``num_cpus`` CPUs (default:
    all) and ``num_gpus`` GPUs (default: those found), unless this process already joined one (``ray.init``), which
    is then used and left running. ``matrix_shards``: tasks the matrix is split into (default: as many as fit at
    once, at most 8).
    """

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, num_gpus: float | None = None,
                 resources: Resources | None = None, matrix_shards: int | None = None) -> None:
        self.address, self.num_cpus, self.num_gpus = address, num_cpus, num_gpus
        self.resources = resources or Resources()
        self.matrix_shards = matrix_shards
        self.owned = False  # whether start() started the Ray it uses (close() then shuts it down)
        self.progress: Any = None  # the queue through which tasks say where they run
        self.pending: dict[Any, tuple[Step, str]] = {}  # object ref -> (step, where: "" until known)
        self.parts: dict[Any, list[Any]] = {}  # a matrix's join ref -> its shards' refs

    def start(self, suite: Suite, device: str | None, on_progress: Any = None) -> None:
        super().start(suite, device, on_progress)
        ray = _ray()
        if not ray.is_initialized():
            options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                       "configure_logging": False}
            if self.address:
                options["address"] = self.address
            else:
                options.update(num_cpus=self.num_cpus, num_gpus=self.num_gpus)
                env = _worker_env()
                if env:
                    options["runtime_env"] = {"env_vars": env}
            try:
                ray.init(**options)
            except (ConnectionError, RuntimeError, ValueError) as err:
                raise RobenchError(f"cannot start or join Ray ({one_line(err)}); check --address") from None
            self.owned = True
        total = ray.cluster_resources()
        if device == "cpu":
            self.resources = Resources(self.resources.cpus, {k: 0.0 for k in KINDS})
        elif not self.resources.default_gpus and total.get("GPU", 0) >= 1:
            self.resources.default_gpus = 1.0
        self.slots = max(1, int(total.get("CPU", 1) // max(self.resources.cpus, 1e-9)))
        self._check_fits(total)
        from ray.util.queue import Queue

        self.progress = Queue(actor_options={"num_cpus": 0}) if on_progress is not None else None
        self.remote = {name: ray.remote(fn) for name, fn in
                       (("step", _step_task), ("shard", _shard_task), ("join", _join_task))}
        self.pending, self.parts = {}, {}
        log.info("ray: %s", {k: v for k, v in total.items() if k in ("CPU", "GPU")})

    def _check_fits(self, total: dict[str, float]) -> None:
        for kind in KINDS:
            cpus, gpus = self.resources.cpus, self.resources.gpus.get(kind, self.resources.default_gpus)
            if cpus > total.get("CPU", 0) or gpus > total.get("GPU", 0):
                raise RobenchError(f"a {kind} step asks for {cpus:g} CPUs and {gpus:g} GPUs, the Ray cluster has "
                                   f"{total.get('CPU', 0):g} and {total.get('GPU', 0):g}; lower --cpus-per-step or "
                                   f"--gpus-per-{kind}")

    def submit(self, step: Step) -> None:
        cpus, gpus = self.resources.of(step)
        opts = {"num_cpus": cpus, "num_gpus": gpus, "name": step.label, "max_retries": 0}
        if step.kind != "matrix":
            ref = self.remote["step"].options(**opts).remote(self.suite, step, self.device, cpus, self.progress)
            self.pending[ref] = (step, "")
            return
        n = self.matrix_shards or max(1, min(8, self.slots))
        parts = [self.remote["shard"].options(**{**opts, "name": f"{step.label} {i}/{n}"})
                 .remote(self.suite, step, (i, n), self.device, cpus) for i in range(1, n + 1)]
        ref = self.remote["join"].options(num_cpus=min(cpus, 1), num_gpus=0, name=f"{step.label} join",
                                          max_retries=0).remote(self.suite, step, time.time(), *parts)
        self.pending[ref] = (step, f"{n} shards")
        self.parts[ref] = parts
        if self.on_progress:
            self.on_progress(step.label, "running", {"where": f"{n} shards"})

    def collect(self) -> list[Outcome]:
        ray = _ray()
        while True:
            self._drain()
            ready, _ = ray.wait(list(self.pending), num_returns=len(self.pending), timeout=0.5)
            if ready:
                break
        self._drain()
        outcomes = []
        for ref in ready:
            step, where = self.pending.pop(ref)
            self.parts.pop(ref, None)
            try:
                outcomes.append(ray.get(ref))
            except Exception as err:  # noqa: BLE001  (a task that died: its worker crashed, a shard failed)
                cause = getattr(err, "cause", None) or err
                outcomes.append(Outcome(step.label, FAILED, error=one_line(cause), where=where))
        return outcomes

    def _drain(self) -> None:
        """Pass on the 'running' reports of tasks that started (where they run)."""
        while self.progress is not None and not self.progress.empty():
            label, kind, payload = self.progress.get_nowait()
            if self.on_progress:
                self.on_progress(label, kind, payload)

    def close(self) -> None:
        if not (self.pending or self.owned or self.progress is not None):
            return
        ray = _ray()
        for ref in [*self.pending, *(p for parts in self.parts.values() for p in parts)]:
            ray.cancel(ref, force=True)  # an interrupted run leaves no task of its own behind
        self.pending, self.parts = {}, {}
        if self.progress is not None:
            self.progress.shutdown()
            self.progress = None
        if self.owned:
            ray.shutdown()
            self.owned = False
