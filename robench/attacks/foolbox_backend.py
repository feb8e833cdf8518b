"""Foolbox 3 adapter: builders give ``(attack, run_kwargs)``; :func:`run` calls the attack's own ``run``.

Foolbox's eager PyTorch path stays in torch end to end. ``attack.run`` is used rather than
``attack(...)`` because the latter adds a forward pass (its success check) that set generation
does anyway with the source's predictions.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)


def version() -> str:
    import foolbox

    return foolbox.__version__


def fgsm(params: dict) -> tuple[Any, dict]:
    import foolbox as fb

    cls = fb.attacks.L2FastGradientAttack if params.get("norm") == "l2" else fb.attacks.LinfFastGradientAttack
    return cls(random_start=False), {"epsilon": params["eps"]}


def pgd(params: dict) -> tuple[Any, dict]:
    import foolbox as fb

    cls = fb.attacks.L2PGD if params.get("norm") == "l2" else fb.attacks.LinfPGD
    attack = cls(abs_stepsize=params["step"], steps=params["steps"], random_start=params["random_start"])
    return attack, {"epsilon": params["eps"]}


def mifgsm(params: dict) -> tuple[Any, dict]:
    import foolbox as fb

    attack = fb.attacks.LinfMomentumIterativeFastGradientMethod(
        momentum=params["decay"], abs_stepsize=params["step"], steps=params["steps"], random_start=False)
    return attack, {"epsilon": params["eps"]}


def cw(params: dict) -> tuple[Any, dict]:
    import foolbox as fb

    attack = fb.attacks.L2CarliniWagnerAttack(
        binary_search_steps=params["binary_search_steps"], steps=params["steps"], stepsize=params["step"],
        confidence=params["confidence"], initial_const=params["initial_const"], abort_early=True)
    return attack, {}


class _Boundary:
    """Foolbox's BoundaryAttack, started from LinearSearchBlendedUniformNoiseAttack (large uniform noise).

    Foolbox refuses the whole batch when the noise start fails for a few inputs; here those inputs
    are returned unchanged (so they count as failures) and the rest of the batch is attacked.
    """

    def __init__(self, params: dict) -> None:
        import foolbox as fb

        self.init = fb.attacks.LinearSearchBlendedUniformNoiseAttack(
            directions=params["init_directions"], steps=params["init_steps"])
        self.attack = fb.attacks.BoundaryAttack(steps=params["steps"], spherical_step=params["spherical_step"],
                                                source_step=params["source_step"])

    def run(self, fmodel: Any, images: torch.Tensor, criterion: Any) -> torch.Tensor:
        import foolbox as fb

        labels = criterion.labels.raw
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            starts = self.init.run(fmodel, images, criterion)
        ok = fmodel(starts).argmax(1) != labels
        if not ok.all():
            log.info("boundary: the noise start failed for %d of %d inputs", int((~ok).sum()), len(ok))
        adv = images.clone()
        if ok.any():
            adv[ok] = self.attack.run(fmodel, images[ok], fb.criteria.Misclassification(labels[ok]),
                                      starting_points=starts[ok])
        return adv


def boundary(params: dict) -> tuple[Any, dict]:
    return _Boundary(params), {}


def run(builder, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, params: dict) -> torch.Tensor:
    """Adversarial images (N, C, H, W) in [0,1] for images (N, C, H, W) in [0,1] and labels (N,) (the target labels
    when ``params["targeted"]``)."""
    import foolbox as fb

    attack, kwargs = builder(params)
    fmodel = fb.PyTorchModel(model, bounds=(0, 1), device=images.device)
    targeted = params.get("targeted", False)
    criterion = (fb.criteria.TargetedMisclassification if targeted else fb.criteria.Misclassification)(labels)
    return attack.run(fmodel, images, criterion, **kwargs).detach()
