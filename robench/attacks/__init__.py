"""Adversarial attacks: a method registry, one Attack contract that every backend (robench's own, ART, Foolbox,
torchattacks) implements, set generation.

    import robench
    record = robench.attack("resnet18", "pgd", eps="16/255", n=500)   # a set in the workspace
    adv = robench.load_set(record.name).adv                           # (N, C, H, W) float32 in [0,1]

Names are imported on first use (PEP 562), so the registry can be read without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from robench._lazy import lazy_exports

_EXPORTS = {
    "attack": "generate", "default_set_name": "generate", "list_sets": "generate", "perturb": "generate",
    "perturb_output": "generate",
    "CIFAR10C_SIGMAS": "noise", "gaussian_noise": "noise",
    "Attack": "contract", "AttackOutput": "contract", "Extras": "contract",
    "MethodSpec": "registry", "list_backends": "registry", "list_methods": "registry", "method_spec": "registry",
    "parse_number": "registry", "register_attack": "registry", "register_backend": "registry",
    "register_method": "registry",
}
__all__ = ["Attack", "AttackOutput", "CIFAR10C_SIGMAS", "Extras", "MethodSpec", "attack", "default_set_name",
    "gaussian_noise", "list_backends", "list_methods", "list_sets", "method_spec", "parse_number", "perturb",
    "perturb_output", "register_attack", "register_backend", "register_method"]

if TYPE_CHECKING:
    from robench.attacks.contract import Attack, AttackOutput, Extras
    from robench.attacks.generate import attack, default_set_name, list_sets, perturb, perturb_output
    from robench.attacks.noise import CIFAR10C_SIGMAS, gaussian_noise
    from robench.attacks.registry import (
        MethodSpec,
        list_backends,
        list_methods,
        method_spec,
        parse_number,
        register_attack,
        register_backend,
        register_method,
    )


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
