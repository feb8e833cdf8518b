"""Adversarial attacks: a method registry, one adapter per backend (ART, Foolbox), set generation."""

from robench.attacks.noise import gaussian_noise


def attack(*args, **kwargs):  # placeholder, replaced by the attack generation module
    raise NotImplementedError


def list_sets(*args, **kwargs):  # placeholder
    raise NotImplementedError


__all__ = ["attack", "gaussian_noise", "list_sets"]
