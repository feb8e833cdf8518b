"""Foolbox 3 backend: :class:`FoolboxAttack` runs a Foolbox attack through its own ``run``; the Boundary and
HopSkipJump attacks, which need more around Foolbox's, are Attacks of their own (:class:`Boundary`,
:class:`HopSkipJump`). All implement the one :class:`~robench.attacks.contract.Attack` contract.

Foolbox's eager PyTorch path stays in torch end to end. ``attack.run`` is used rather than
``attack(...)`` because the latter adds a forward pass (its success check) that set generation
does anyway with the source's predictions.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from robench.attacks.contract import AttackOutput, Extras
from robench.attacks.convergence import SETTLED, EarlyStop, checkpoints
from robench.attacks.queries import BudgetSpent, QueryCounter, project
from robench.errors import RobenchError

log = logging.getLogger(__name__)


def version() -> str:
    import foolbox

    return foolbox.__version__


class FoolboxAttack:
    """A Foolbox 3 attack as an Attack: ``build(params) -> (attack, run keywords)``, run on the model wrapped as a
    ``PyTorchModel`` with bounds (0, 1), under Foolbox's (targeted) misclassification criterion."""

    def __init__(self, build: Callable[[dict], tuple[Any, dict]]) -> None:
        self.build = build
        functools.update_wrapper(self, build)

    def run(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, params: dict) -> AttackOutput:
        import foolbox as fb

        attack, kwargs = self.build(params)
        targeted = params.get("targeted", False)
        criterion = (fb.criteria.TargetedMisclassification if targeted else fb.criteria.Misclassification)(labels)
        return AttackOutput(attack.run(_fmodel(model, images), images, criterion, **kwargs).detach())


@FoolboxAttack
def fgsm(params: dict) -> tuple[Any, dict]:
    """Foolbox's FGSM/FGM; untargeted only (Foolbox refuses a targeted criterion)."""
    import foolbox as fb

    if params.get("targeted"):
        raise RobenchError("Foolbox's FGSM is untargeted only; use --backend robench or art for a targeted fgsm")
    cls = fb.attacks.L2FastGradientAttack if params.get("norm") == "l2" else fb.attacks.LinfFastGradientAttack
    return cls(random_start=False), {"epsilon": params["eps"]}


@FoolboxAttack
def pgd(params: dict) -> tuple[Any, dict]:
    import foolbox as fb

    cls = fb.attacks.L2PGD if params.get("norm") == "l2" else fb.attacks.LinfPGD
    attack = cls(abs_stepsize=params["step"], steps=params["steps"], random_start=params["random_start"])
    return attack, {"epsilon": params["eps"]}


@FoolboxAttack
def mifgsm(params: dict) -> tuple[Any, dict]:
    import foolbox as fb

    attack = fb.attacks.LinfMomentumIterativeFastGradientMethod(
        momentum=params["decay"], abs_stepsize=params["step"], steps=params["steps"], random_start=False)
    return attack, {"epsilon": params["eps"]}


@FoolboxAttack
def cw(params: dict) -> tuple[Any, dict]:
    import foolbox as fb

    attack = fb.attacks.L2CarliniWagnerAttack(
        binary_search_steps=params["binary_search_steps"], steps=params["steps"], stepsize=params["step"],
        confidence=params["confidence"], initial_const=params["initial_const"], abort_early=True)
    return attack, {}


class _NormTrace:
    """Stands in for Foolbox's TensorBoard logger during one ``BoundaryAttack.run``.

    Foolbox logs ``histogram("norms", source_norms, step)`` at the start of every step: the L2 norms (N,) of its
    current best adversarials, i.e. after ``step - 1`` steps. This keeps them at the checkpoint step counts and
    ignores every other log call, so the attack itself runs unchanged (checked in the tests: same images with
    and without the trace).

    With ``stop`` (an :class:`EarlyStop`), an example whose own trace meets the convergence rule at a checkpoint
    is frozen from then on (its best adversarial no longer changes) and the run ends when every example is
    frozen: Foolbox freezes an example whose source step fell below ``attack.source_step_convergance``, so the
    threshold becomes a per-example tensor, infinite for the stopped ones. ``used`` records each example's steps
    (the first step at which Foolbox saw it frozen, by either rule; the cap otherwise).
    """

    def __init__(self, checkpoints: list[int], cap: int = 0, stop: EarlyStop | None = None, attack: Any = None,
                 n: int = 0) -> None:
        self.checkpoints = set(checkpoints)
        self.norms: dict[int, torch.Tensor] = {}
        self.stop, self.attack, self.cap = stop, attack, cap
        self.used = torch.full((n,), cap, dtype=torch.int64)
        self.stopped = torch.zeros(n, dtype=torch.bool)

    def __call__(self, logdir: Any = False) -> _NormTrace:  # Foolbox calls TensorBoard(logdir=...)
        return self

    def histogram(self, tag: str, x: Any, step: int, **_: Any) -> None:
        if tag == "norms" and step - 1 in self.checkpoints:
            self.norms[step - 1] = x.raw.detach().float().cpu().clone()
            if self.stop is not None:
                self._check(x, step)

    def probability(self, tag: str, x: Any, step: int, **_: Any) -> None:
        if tag == "converged":  # logged at every step: which examples Foolbox no longer moves (ran step - 1 steps)
            frozen = x.raw.detach().reshape(len(self.used)).cpu()
            self.used[frozen & (self.used == self.cap)] = step - 1

    def _check(self, x: Any, step: int) -> None:
        """Freeze the examples whose trace so far meets the convergence rule; this step was their last."""
        import eagerpy as ep

        steps = sorted(self.norms)
        done = self.stop.converged(steps, torch.stack([self.norms[c] for c in steps], 1)) & ~self.stopped
        if done.any():
            self.stopped |= done
            self.used[done & (self.used == self.cap)] = step
            threshold = torch.where(self.stopped, torch.tensor(math.inf), torch.tensor(self.stop.floor))
            self.attack.source_step_convergance = ep.astensor(threshold.to(x.raw.device, x.raw.dtype))

    def __getattr__(self, name: str) -> Any:  # scalar, mean, close, ...: ignored
        return lambda *args, **kwargs: None


_PATCH_LOCK = threading.Lock()


@contextlib.contextmanager
def _tracing(recorder: _NormTrace) -> Iterator[None]:
    """Foolbox's BoundaryAttack logs to ``recorder`` instead of its (disabled) TensorBoard for the duration."""
    from foolbox.attacks import boundary_attack

    with _PATCH_LOCK:
        original = boundary_attack.TensorBoard
        boundary_attack.TensorBoard = recorder
        try:
            yield
        finally:
            boundary_attack.TensorBoard = original


class Boundary:
    """Foolbox's BoundaryAttack, started from LinearSearchBlendedUniformNoiseAttack (large uniform noise).

    Foolbox refuses the whole batch when the noise start fails for a few inputs; here those inputs
    are returned unchanged (so they count as failures) and the rest of the batch is attacked. One run
    records each example's L2 norm at ``convergence.checkpoints(steps)`` (extra ``l2_trace``, (N, K),
    NaN where the start failed). With ``early_stop`` an example stops at the first checkpoint where its own trace
    meets the convergence rule (see :class:`~robench.attacks.convergence.EarlyStop`); extras ``steps_used`` (N,)
    and ``converged`` (N,) say how many steps each example ran and whether it converged (by that rule, or by
    Foolbox's own: its step sizes fell below the floor). Each batch gets fresh Foolbox attacks
    (:class:`_BoundaryRun`), so no example starts frozen.
    """

    def run(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, params: dict) -> AttackOutput:
        return _BoundaryRun(params).run(_fmodel(model, images), images, labels)


class _BoundaryRun:
    """One :class:`Boundary` run: Foolbox's noise start and BoundaryAttack built from the parameters."""

    def __init__(self, params: dict) -> None:
        import foolbox as fb

        self.init = fb.attacks.LinearSearchBlendedUniformNoiseAttack(
            directions=params["init_directions"], steps=params["init_steps"])
        self.steps = params["steps"]
        self.attack = fb.attacks.BoundaryAttack(steps=self.steps, spherical_step=params["spherical_step"],
                                                source_step=params["source_step"])
        self.checkpoints = checkpoints(self.steps)
        self.stop = EarlyStop(params["tolerance"], params.get("settle", SETTLED),
                              float(self.attack.source_step_convergance)) if params.get("early_stop") else None

    def run(self, fmodel: Any, images: torch.Tensor, labels: torch.Tensor) -> AttackOutput:
        import foolbox as fb

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            starts = self.init.run(fmodel, images, fb.criteria.Misclassification(labels))
        ok = fmodel(starts).argmax(1) != labels
        if not ok.all():
            log.info("boundary: the noise start failed for %d of %d inputs", int((~ok).sum()), len(ok))
        adv = images.clone()
        l2_trace = torch.full((len(images), len(self.checkpoints)), math.nan)
        used = torch.zeros(len(images), dtype=torch.int64)
        converged = torch.zeros(len(images), dtype=torch.bool)
        if ok.any():
            recorder = _NormTrace(self.checkpoints, self.steps, self.stop, self.attack, int(ok.sum()))
            with _tracing(recorder):
                adv[ok] = self.attack.run(fmodel, images[ok], fb.criteria.Misclassification(labels[ok]),
                                          starting_points=starts[ok])
            final = (adv[ok] - images[ok]).flatten(1).norm(dim=1).float().cpu()
            # checkpoints the run did not reach (it stops early once every step size has converged) keep the final
            columns = [recorder.norms.get(c, final) if c < self.checkpoints[-1] else final for c in self.checkpoints]
            l2_trace[ok.cpu()] = torch.stack(columns, 1)
            used[ok.cpu()] = recorder.used
            converged[ok.cpu()] = recorder.used < self.steps
        extra = Extras(l2_trace=l2_trace, steps_used=used, converged=converged)
        return AttackOutput(adv, extra.map(lambda t: t.to(images.device)))


boundary = Boundary()


class HopSkipJump:
    """Foolbox's HopSkipJumpAttack under a query budget, started from LinearSearchBlendedUniformNoiseAttack.

    The model sits behind a :class:`~robench.attacks.queries.QueryCounter` that stops the attack before any
    example would exceed ``queries`` (noise start included). The result is the closest adversarial image (in
    ``norm``) the attack queried for each example, moved into the ``eps`` ball: examples whose best lies outside
    it come back projected and usually no longer fool the model, so a kept example is within ``eps``.
    """

    def run(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, p: dict) -> AttackOutput:
        import foolbox as fb

        counter = QueryCounter(model, images, labels, norm=p["norm"], budget=p["queries"], enforce=True)
        init = fb.attacks.LinearSearchBlendedUniformNoiseAttack(directions=p["init_directions"], steps=p["init_steps"])
        ok = torch.zeros(len(images), dtype=torch.bool, device=images.device)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                starts = init.run(_fmodel(counter, images), images, fb.criteria.Misclassification(labels))
            # images the model already misclassifies stay as they are (Foolbox's HopSkipJump loops on a zero distance)
            ok = (counter(starts).argmax(1) != labels) & (counter(images).argmax(1) == labels)
        except BudgetSpent:
            log.info("hopskipjump: the query budget ran out in the noise start")
        best, dist, counts = counter.best, counter.best_dist, counter.counts
        if ok.any():
            sub = QueryCounter(model, images[ok], labels[ok], norm=p["norm"], budget=p["queries"] - counts[ok],
                               enforce=True, clean_logits=counter.clean_logits[ok])
            attack = fb.attacks.HopSkipJumpAttack(
                steps=p["hsj_steps"], initial_gradient_eval_steps=p["grad_evals"],
                max_gradient_eval_steps=p["max_grad_evals"], gamma=p["gamma"], constraint=p["norm"])
            try:
                attack.run(_fmodel(sub, images), images[ok], fb.criteria.Misclassification(labels[ok]),
                           starting_points=starts[ok])
            except BudgetSpent:
                pass
            better = sub.best_dist < dist[ok]
            rows = ok.nonzero().flatten()[better]
            best[rows], counts[ok] = sub.best[better], counts[ok] + sub.counts
        return AttackOutput(project(images, best, p["eps"], p["norm"]), Extras(queries=counts.clone()))


def _fmodel(model: nn.Module, images: torch.Tensor) -> Any:
    import foolbox as fb

    return fb.PyTorchModel(model, bounds=(0, 1), device=images.device)


hopskipjump = HopSkipJump()
