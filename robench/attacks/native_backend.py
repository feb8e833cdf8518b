"""The built-in backend: attacks that need no attack library (Gaussian noise)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from robench.attacks.noise import gaussian_noise


def version() -> str:
    from robench._version import __version__

    return __version__


def run(builder: Callable, model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
        params: dict) -> torch.Tensor:
    return builder(model, images, labels, params)


def noise(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, params: dict) -> torch.Tensor:
    """Gaussian noise ignores the model; the global torch RNG (seeded per run, in a fork) draws it."""
    return gaussian_noise(images, params["sigma"])
