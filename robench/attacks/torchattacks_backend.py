"""torchattacks backend: each method is a :class:`TorchattacksAttack` (the one
:class:`~robench.attacks.contract.Attack` contract) around a function that builds a torchattacks attack for the
model, called on the batch.

torchattacks works in torch end to end on images in [0, 1] (the model normalises internally). Two of its
defaults are not what robench's methods mean, so the builders set them explicitly:

- its ``AutoAttack(version="standard")`` runs APGD, APGD-T and FAB-T with 10 iterations; the original
  (Croce & Hein, fra31/auto-attack, the RobustBench standard) runs them with 100. :func:`autoattack` composes
  torchattacks' APGD, APGD-T, FAB-T and Square with the original's settings instead (see its docstring);
- its TI-FGSM applies input diversity unless told not to (``diversity_prob=0``), and smooths with a kernel
  hard-wired to 3 channels (1-channel images are refused with a one-line error).

Where a step's gradient is exactly zero, torchattacks' mean-abs normalisation divides by zero and the image
becomes NaN; :class:`TorchattacksAttack` returns the clean pixels there (the example then counts as not fooled).
"""

from __future__ import annotations

import contextlib
import functools
import io
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from robench.attacks.contract import AttackOutput
from robench.errors import RobenchError


def version() -> str:
    return _ta().__version__


def _ta() -> Any:
    try:
        import torchattacks
    except ImportError:
        raise RobenchError("this attack needs torchattacks, which is not installed: "
                           "pip install 'robench[torchattacks]' (or pip install torchattacks)") from None
    return torchattacks


class TorchattacksAttack:
    """A torchattacks attack as an Attack: ``build(model, params, images)`` gives the attack, called on the batch
    (in targeted mode by label when ``params["targeted"]``; its printing silenced)."""

    def __init__(self, build: Callable[[nn.Module, dict, torch.Tensor], Any]) -> None:
        self.build = build
        functools.update_wrapper(self, build)

    def run(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, params: dict) -> AttackOutput:
        attack = self.build(model, params, images)
        if params.get("targeted"):
            attack.set_mode_targeted_by_label(quiet=True)
        with contextlib.redirect_stdout(io.StringIO()):  # torchattacks prints mode changes and progress
            adv = attack(images, labels).detach()
        return AttackOutput(torch.where(torch.isfinite(adv), adv, images))


@TorchattacksAttack
def difgsm(model: nn.Module, params: dict, images: torch.Tensor) -> Any:
    return _ta().DIFGSM(model, eps=params["eps"], alpha=params["step"], steps=params["steps"],
                        decay=params["decay"], resize_rate=params["resize"], diversity_prob=params["diversity"],
                        random_start=False)


def _ti(model: nn.Module, params: dict, images: torch.Tensor, diversity: float, resize: float) -> Any:
    if images.shape[1] != 3:
        raise RobenchError(f"torchattacks' TI-FGSM smooths 3-channel images only, these have {images.shape[1]}; "
                           f"use --backend robench")
    return _ta().TIFGSM(model, eps=params["eps"], alpha=params["step"], steps=params["steps"], decay=params["decay"],
                        kernel_name="gaussian", len_kernel=params["kernel"], nsig=params["nsig"],
                        resize_rate=resize, diversity_prob=diversity, random_start=False)


@TorchattacksAttack
def tifgsm(model: nn.Module, params: dict, images: torch.Tensor) -> Any:
    return _ti(model, params, images, 0.0, 0.9)


@TorchattacksAttack
def mdti(model: nn.Module, params: dict, images: torch.Tensor) -> Any:
    return _ti(model, params, images, params["diversity"], params["resize"])


@TorchattacksAttack
def vmifgsm(model: nn.Module, params: dict, images: torch.Tensor) -> Any:
    return _ta().VMIFGSM(model, eps=params["eps"], alpha=params["step"], steps=params["steps"],
                         decay=params["decay"], N=params["samples"], beta=params["beta"])


def _norm(params: dict) -> str:
    return {"linf": "Linf", "l2": "L2"}[params.get("norm", "linf")]


def _seed() -> int:
    """torchattacks' APGD/FAB/Square reseed torch from their own ``seed``: take the run's (set by generation)."""
    return int(torch.initial_seed() % 2**31)


@TorchattacksAttack
def apgd(model: nn.Module, params: dict, images: torch.Tensor) -> Any:
    return _ta().APGD(model, norm=_norm(params), eps=params["eps"], steps=params["steps"],
                      n_restarts=params["restarts"], seed=_seed(), loss=params["loss"], rho=0.75)


from robench.attacks.registry import AUTOATTACK_PARTS  # noqa: E402,F401  (the one list, torch-free)


def autoattack_parts(model: nn.Module, params: dict, num_classes: int) -> list[Any]:
    """AutoAttack's standard attacks with the original's settings (fra31/auto-attack ``version='standard'``):
    APGD-CE (1 restart), APGD-T (targeted DLR, the 9 most likely other classes), FAB-T (same targets), each with
    ``steps`` iterations (100), and Square with ``queries`` (5000); ``params["attacks"]`` picks a subset."""
    ta, norm, eps, seed, steps = _ta(), _norm(params), params["eps"], _seed(), params["steps"]
    targets = max(1, min(9, num_classes - 1))
    build = {
        "apgd-ce": lambda: ta.APGD(model, norm=norm, eps=eps, steps=steps, n_restarts=1, seed=seed, loss="ce"),
        "apgd-t": lambda: ta.APGDT(model, norm=norm, eps=eps, steps=steps, n_restarts=1, seed=seed,
                                   n_classes=num_classes),
        "fab-t": lambda: ta.FAB(model, norm=norm, eps=eps, steps=steps, n_restarts=1, seed=seed,
                                multi_targeted=True, n_classes=num_classes),
        "square": lambda: ta.Square(model, norm=norm, eps=eps, n_queries=params["queries"], n_restarts=1,
                                    seed=seed, p_init=0.8),
    }
    parts = []
    for name in str(params["attacks"]).split(","):
        attack = build[name.strip()]()
        if hasattr(attack, "n_target_classes"):
            attack.n_target_classes = targets
        parts.append(attack)
    return parts


class _AutoAttack:
    """The standard AutoAttack run: each attack only on the inputs every earlier attack failed on."""

    def __init__(self, model: nn.Module, params: dict, images: torch.Tensor) -> None:
        with torch.no_grad():
            classes = int(model(images[:1]).shape[1])
        self.model = model
        self.parts = autoattack_parts(model, params, classes)

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        adv = images.clone()
        with torch.no_grad():
            left = (self.model(images).argmax(1) == labels).nonzero().flatten()
        for attack in self.parts:
            if not len(left):
                break
            out = attack(images[left], labels[left])
            with torch.no_grad():
                fooled = self.model(out).argmax(1) != labels[left]
            adv[left[fooled]] = out[fooled]
            left = left[~fooled]
        return adv


@TorchattacksAttack
def autoattack(model: nn.Module, params: dict, images: torch.Tensor) -> Any:
    return _AutoAttack(model, params, images)

