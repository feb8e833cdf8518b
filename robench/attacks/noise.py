"""Additive Gaussian noise, the papers' corruption baseline (not an optimisation attack)."""

from __future__ import annotations

import torch

# Gaussian-noise sigmas of CIFAR-10-C's five severities (Hendrycks & Dietterich, 2019), images in [0,1].
CIFAR10C_SIGMAS = (0.04, 0.06, 0.08, 0.09, 0.10)


def gaussian_noise(images: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """images (N, C, H, W) in [0,1] plus N(0, sigma^2) per pixel, clipped back to [0,1]."""
    noise = torch.randn(images.shape, generator=generator, device="cpu").to(images.device)
    return (images + sigma * noise).clamp_(0.0, 1.0)
