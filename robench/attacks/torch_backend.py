"""The native torch backend: one iterative gradient loop behind FGSM, PGD, MI-FGSM and the transfer family.

Every gradient method here is a variation of one loop (:func:`iterate`), configured by a :class:`Loop`::

    for t in 1..steps:
        g = grad of CE(model(D(x_t)), y) at x_t        # D: input diversity (DI), identity unless --diversity
        g = W * g                                       # translation invariance (TI): Gaussian smoothing
        g' = g + v;  v = mean_i grad(x_t + r_i) - g     # variance tuning (VMI), r_i ~ U(-beta*eps, beta*eps)
        m = decay * m + g' / ||g'||_1                   # momentum (MI, Dong et al.), when decay is set
        x_{t+1} = Proj_eps(x_t + step * s(m or g'))     # s = sign (Linf) or m / ||m||_2 (L2); clip to [0, 1]

FGSM / FGM is one step of size eps; PGD (basic iterative) plain steps; MI-FGSM adds momentum; DI, TI and VMI
add their one line each. Targeted attacks descend the CE of the target label instead. Gradients are taken
with ``torch.autograd.grad`` on the input only (the caller freezes the weights), with the summed CE so each
example's gradient is independent of the batch. Images (N, C, H, W) float32 in [0, 1].

The backend's attacks (:class:`Native`: ``fgsm`` ... ``mdti``, robench's Square Attack and Gaussian noise) are
plain functions ``(model, images, labels, params) -> images or AttackOutput`` wrapped into the one
:class:`~robench.attacks.contract.Attack` contract.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from robench.attacks.contract import AttackOutput, Extras

_TINY = 1e-12


@dataclass(frozen=True)
class Loop:
    """One configuration of the iterative loop. ``eps`` and ``step`` are in [0, 1] image units: per pixel for
    ``linf``, the L2 norm of the whole (C, H, W) perturbation for ``l2``."""

    eps: float
    step: float
    steps: int = 1
    norm: str = "linf"
    decay: float | None = None
    random_start: bool = False
    diversity: float = 0.0
    resize: float = 0.9
    kernel: int = 0
    nsig: float = 3.0
    samples: int = 0
    beta: float = 1.5
    targeted: bool = False


# ---------------------------------------------------------------- the pieces


def _per_sample(x: torch.Tensor) -> tuple[int, ...]:
    return tuple(range(1, x.ndim))


def _unit(g: torch.Tensor, norm: str) -> torch.Tensor:
    """The steepest-ascent direction of unit size: sign(g) (Linf) or g / ||g||_2 (L2; zero stays zero)."""
    if norm == "linf":
        return g.sign()
    return g / g.flatten(1).norm(dim=1).clamp_min(_TINY).view(-1, *[1] * (g.ndim - 1))


def _project(adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """adv moved back into the eps ball around x (Linf: clip each pixel; L2: rescale), then clipped to [0, 1]."""
    delta = adv - x
    if norm == "linf":
        delta = delta.clamp_(-eps, eps)
    else:
        size = delta.flatten(1).norm(dim=1).view(-1, *[1] * (x.ndim - 1))
        delta = delta * (eps / size.clamp_min(_TINY)).clamp_max(1.0)
    return (x + delta).clamp_(0.0, 1.0)


def _random_start(x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """A uniform point of the Linf ball, or a point of the L2 ball (uniform direction, radius eps*U^(1/d))."""
    if norm == "linf":
        return (x + torch.empty_like(x).uniform_(-eps, eps)).clamp_(0.0, 1.0)
    d = x[0].numel()
    direction = _unit(torch.randn_like(x), "l2")
    radius = eps * torch.rand(len(x), device=x.device).pow(1.0 / d).view(-1, *[1] * (x.ndim - 1))
    return (x + direction * radius).clamp_(0.0, 1.0)


def gaussian_kernel(size: int, nsig: float, channels: int, device: torch.device | None = None) -> torch.Tensor:
    """The TI smoothing kernel (channels, 1, size, size): a size x size Gaussian over [-nsig, nsig] sigmas, sum 1."""
    t = torch.linspace(-nsig, nsig, size, dtype=torch.float64)
    k1 = torch.exp(-0.5 * t * t)
    k2 = torch.outer(k1, k1)
    k2 = (k2 / k2.sum()).float()
    return k2.expand(channels, 1, size, size).contiguous().to(device)


def diverse(x: torch.Tensor, prob: float, resize: float) -> torch.Tensor:
    """Input diversity (Xie et al.): with probability ``prob``, shrink the batch to a random size in
    [resize * H, H) and zero-pad it back to H x W at a random offset (one draw per batch); else x."""
    h = x.shape[-1]
    low = int(h * resize)
    if prob <= 0 or low >= h or torch.rand(()) >= prob:
        return x
    size = int(torch.randint(low, h, ()))
    top, left = int(torch.randint(0, h - size + 1, ())), int(torch.randint(0, h - size + 1, ()))
    small = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return F.pad(small, (left, h - size - left, top, h - size - top))


def _gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loop: Loop) -> torch.Tensor:
    """d/dx of the summed CE (negated for a targeted attack) at x (N, C, H, W), through input diversity."""
    x = x.detach().requires_grad_(True)
    inputs = diverse(x, loop.diversity, loop.resize) if loop.diversity > 0 else x
    loss = F.cross_entropy(model(inputs).float(), y, reduction="sum")
    (grad,) = torch.autograd.grad(-loss if loop.targeted else loss, x)
    return grad


def _neighbourhood(model: nn.Module, adv: torch.Tensor, y: torch.Tensor, loop: Loop) -> torch.Tensor:
    """VMI: the mean gradient over ``samples`` uniform neighbours of adv within beta * eps (Linf box)."""
    total = torch.zeros_like(adv)
    radius = loop.beta * loop.eps
    plain = Loop(eps=loop.eps, step=loop.step, targeted=loop.targeted)
    for _ in range(loop.samples):
        total += _gradient(model, adv + torch.empty_like(adv).uniform_(-radius, radius), y, plain)
    return total / loop.samples


# ---------------------------------------------------------------- the loop


def iterate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, loop: Loop) -> torch.Tensor:
    """Adversarial images (N, C, H, W) in [0,1] for images (N, C, H, W) in [0,1] and labels (N,) (the targets,
    when ``loop.targeted``). Draws from the global torch RNG (random start, DI, VMI neighbours)."""
    x = images.detach()
    adv = _random_start(x, loop.eps, loop.norm) if loop.random_start else x.clone()
    kernel = gaussian_kernel(loop.kernel, loop.nsig, x.shape[1], x.device) if loop.kernel > 1 else None
    momentum = torch.zeros_like(x) if loop.decay is not None else None
    variance = torch.zeros_like(x) if loop.samples > 0 else None
    for _ in range(loop.steps):
        grad = _gradient(model, adv, labels, loop)
        if kernel is not None:
            grad = F.conv2d(grad, kernel, padding=loop.kernel // 2, groups=x.shape[1])
        if variance is not None:
            tuned = grad + variance
            variance = _neighbourhood(model, adv, labels, loop) - grad
            grad = tuned
        if momentum is not None:
            scale = grad.abs().mean(dim=_per_sample(grad), keepdim=True)
            momentum.mul_(loop.decay).add_(grad / scale.clamp_min(_TINY))
            grad = momentum
        adv = _project(adv + loop.step * _unit(grad, loop.norm), x, loop.eps, loop.norm)
    return adv.detach()


# ---------------------------------------------------------------- the backend's attacks (registry entries)


class Native:
    """The robench backend's Attack: a function ``(model, images, labels, params) -> images or AttackOutput`` that
    takes the batch directly, run as it is."""

    def __init__(self, fn: Callable[..., torch.Tensor | AttackOutput]) -> None:
        self.fn = fn
        functools.update_wrapper(self, fn)

    def run(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, params: dict) -> AttackOutput:
        return AttackOutput.of(self.fn(model, images, labels, params))


def _loop(params: dict, **overrides) -> Loop:
    norm = params.get("norm", "linf")
    base = {"eps": params["eps"], "step": params.get("step", params["eps"]), "steps": params.get("steps", 1),
            "norm": norm, "random_start": bool(params.get("random_start", False)),
            "targeted": bool(params.get("targeted", False))}
    return Loop(**{**base, **overrides})


@Native
def fgsm(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, params: dict) -> torch.Tensor:
    """One step of size eps: sign of the gradient (Linf, FGSM) or the L2-normalised gradient (L2, FGM)."""
    return iterate(model, images, labels, _loop(params, step=params["eps"], steps=1))


@Native
def pgd(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, params: dict) -> torch.Tensor:
    return iterate(model, images, labels, _loop(params))


@Native
def mifgsm(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, params: dict) -> torch.Tensor:
    return iterate(model, images, labels, _loop(params, decay=params["decay"]))


def _decay(params: dict) -> float | None:
    return params["decay"] if params.get("decay") else None


@Native
def difgsm(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, params: dict) -> torch.Tensor:
    return iterate(model, images, labels, _loop(params, decay=_decay(params), diversity=params["diversity"],
                                                resize=params["resize"]))


@Native
def tifgsm(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, params: dict) -> torch.Tensor:
    return iterate(model, images, labels, _loop(params, decay=_decay(params), kernel=params["kernel"],
                                                nsig=params["nsig"]))


@Native
def vmifgsm(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, params: dict) -> torch.Tensor:
    return iterate(model, images, labels, _loop(params, decay=params["decay"], samples=params["samples"],
                                                beta=params["beta"]))


@Native
def mdti(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, params: dict) -> torch.Tensor:
    return iterate(model, images, labels, _loop(params, decay=_decay(params), diversity=params["diversity"],
                                                resize=params["resize"], kernel=params["kernel"],
                                                nsig=params["nsig"]))


@Native
def noise(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, params: dict) -> torch.Tensor:
    """Gaussian noise ignores the model; the global torch RNG (seeded per run, in a fork) draws it."""
    from robench.attacks.noise import gaussian_noise

    return gaussian_noise(images, params["sigma"])


@Native
def square(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, params: dict) -> AttackOutput:
    """Square Attack, robench's own batched implementation (:mod:`robench.attacks.square`), with the queries (N,)
    each example used."""
    from robench.attacks.square import square_attack

    adv, used = square_attack(model, images, labels, eps=params["eps"], norm=params["norm"],
                              queries=params["queries"], p_init=params["p_init"])
    return AttackOutput(adv, Extras(queries=used))


def version() -> str:
    from robench._version import __version__

    return __version__
