"""Adversarial attacks: a method registry, one adapter per backend (ART, Foolbox), set generation.

    import robench
    meta = robench.attack("resnet18", "pgd", eps="16/255", n=500)   # a set in the workspace
    adv = robench.load_set(meta["name"]).adv                          # (N, C, H, W) float32 in [0,1]
"""

from robench.attacks.generate import attack, default_set_name, list_sets, perturb, perturb_output
from robench.attacks.noise import CIFAR10C_SIGMAS, gaussian_noise
from robench.attacks.registry import (
    AttackOutput,
    MethodSpec,
    list_backends,
    list_methods,
    method_spec,
    parse_number,
    register_method,
)

__all__ = [
    "AttackOutput", "CIFAR10C_SIGMAS", "MethodSpec", "attack", "default_set_name", "gaussian_noise", "list_backends",
    "list_methods", "list_sets", "method_spec", "parse_number", "perturb", "perturb_output", "register_method",
]
