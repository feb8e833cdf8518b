"""ART backend: each method is an :class:`ARTAttack` (the one :class:`~robench.attacks.contract.Attack`
contract) around a function that builds an ART evasion attack for a ``PyTorchClassifier``.

PGD and MI-FGSM use ART's torch-native ``ProjectedGradientDescentPyTorch`` path; every attack
gets the whole batch at once (ART's Carlini-Wagner defaults to batch 1).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from robench.attacks.contract import AttackOutput, Extras
from robench.attacks.queries import QueryCounter
from robench.errors import RobenchError


def version() -> str:
    import art

    return art.__version__


def _norm(params: dict) -> float:
    return 2 if params.get("norm") == "l2" else np.inf


def _targeted(params: dict) -> bool:
    return bool(params.get("targeted", False))


class ARTAttack:
    """An ART evasion attack as an Attack: ``build(classifier, params, batch_size)`` gives the ART attack for an
    ART ``PyTorchClassifier`` of the model, whose ``generate`` runs on the batch (as numpy, on the CPU side).

    With ``counts_queries`` (query-based attacks) the model sits behind a :class:`~robench.attacks.queries.
    QueryCounter` and the output's extras hold the queries (N,) each example used.
    """

    def __init__(self, build: Callable[[Any, dict, int], Any], counts_queries: bool = False) -> None:
        self.build, self.counts_queries = build, counts_queries
        functools.update_wrapper(self, build)

    def run(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, params: dict) -> AttackOutput:
        counter = None
        if self.counts_queries:
            counter = model = QueryCounter(model, images, labels, norm=params["norm"])
        num_classes = counter.cache_logits.shape[2] if counter is not None else None
        attack = self.build(classifier(model, images, num_classes), params, len(images))
        adv = attack.generate(images.detach().cpu().numpy(), labels.detach().cpu().numpy())
        adv = torch.from_numpy(np.ascontiguousarray(adv, dtype=np.float32)).to(images.device)
        return AttackOutput(adv, Extras(queries=counter.counts.clone()) if counter is not None else Extras())


@ARTAttack
def fgsm(classifier: Any, params: dict, batch_size: int) -> Any:
    from art.attacks.evasion import FastGradientMethod

    return FastGradientMethod(classifier, norm=_norm(params), eps=params["eps"], eps_step=params["eps"],
                              targeted=_targeted(params), num_random_init=0, batch_size=batch_size)


@ARTAttack
def pgd(classifier: Any, params: dict, batch_size: int) -> Any:
    from art.attacks.evasion import ProjectedGradientDescentPyTorch

    return ProjectedGradientDescentPyTorch(
        classifier, norm=_norm(params), eps=params["eps"], eps_step=params["step"], max_iter=params["steps"],
        targeted=_targeted(params), num_random_init=int(params["random_start"]), batch_size=batch_size,
        verbose=False)


@ARTAttack
def mifgsm(classifier: Any, params: dict, batch_size: int) -> Any:
    from art.attacks.evasion import MomentumIterativeMethod

    return MomentumIterativeMethod(classifier, norm=np.inf, eps=params["eps"], eps_step=params["step"],
                                   decay=params["decay"], max_iter=params["steps"], targeted=_targeted(params),
                                   batch_size=batch_size, verbose=False)


@ARTAttack
def apgd(classifier: Any, params: dict, batch_size: int) -> Any:
    """ART's Auto-PGD; its first step size is set to 2 * eps as in the original (ART's default is 0.1)."""
    from art.attacks.evasion import AutoProjectedGradientDescent

    loss = {"ce": "cross_entropy", "dlr": "difference_logits_ratio"}[params["loss"]]
    return AutoProjectedGradientDescent(classifier, norm=_norm(params), eps=params["eps"], eps_step=2 * params["eps"],
                                        max_iter=params["steps"], targeted=False, nb_random_init=params["restarts"],
                                        batch_size=batch_size, loss_type=loss, verbose=False)


@ARTAttack
def cw(classifier: Any, params: dict, batch_size: int) -> Any:
    from art.attacks.evasion import CarliniL2Method

    return CarliniL2Method(classifier, confidence=params["confidence"], targeted=_targeted(params),
                           learning_rate=params["step"],
                           binary_search_steps=params["binary_search_steps"], max_iter=params["steps"],
                           initial_const=params["initial_const"], batch_size=batch_size, verbose=False)


@functools.partial(ARTAttack, counts_queries=True)  # the model behind a QueryCounter
def square(classifier: Any, params: dict, batch_size: int) -> Any:
    """ART's SquareAttack, Linf only: one query for its start, then one per iteration (see ``queries.QueryCounter``)."""
    from art.attacks.evasion import SquareAttack

    if params["norm"] != "linf":
        raise RobenchError("ART's L2 SquareAttack divides its new window by the remaining budget where the reference "
                           "multiplies; use --backend robench for square --norm l2")
    if params["queries"] < 2:
        raise RobenchError(f"square --backend art needs --queries >= 2 (one for its start, one per iteration), "
                           f"got {params['queries']}")
    return SquareAttack(classifier, norm=np.inf, eps=params["eps"],
                        max_iter=params["queries"] - 1, p_init=params["p_init"], nb_restarts=1, batch_size=batch_size,
                        verbose=False)


def classifier(model: nn.Module, images: torch.Tensor, num_classes: int | None = None) -> Any:
    """An ART PyTorchClassifier for ``model`` on inputs shaped like images (N, C, H, W) in [0,1]."""
    from art.estimators.classification import PyTorchClassifier

    if num_classes is None:
        with torch.inference_mode():
            num_classes = model(images[:1]).shape[1]
    return PyTorchClassifier(model, loss=nn.CrossEntropyLoss(), input_shape=tuple(images.shape[1:]),
                             nb_classes=num_classes, clip_values=(0.0, 1.0),
                             device_type="gpu" if images.device.type == "cuda" else "cpu")

