"""Square Attack (Andriushchenko et al., ECCV 2020), Linf and L2, batched, with exact per-example query counts.

Written here because neither library at hand has a sound batched version of both norms: ART's L2 SquareAttack
divides its new window by the remaining budget where the reference multiplies (``delta_new /= ||.|| * sqrt(...)``),
and torchattacks pins an old ``requests``. This follows the authors' reference code: margin loss, vertical-stripe
(Linf) or tiled-window (L2) start, the p schedule rescaled to the budget, a random square per example and
iteration (Linf: its signs drawn again while it would leave the image unchanged), and only examples not yet fooled
are evaluated. One query is one model evaluation of one example: the start costs 1, each iteration 1, so no
example exceeds ``queries`` (the clean image's own classification, done by set generation for every method, is
not counted, as in the paper).
"""

from __future__ import annotations

import math

import torch
from torch import nn

# (fraction of the budget, divisor of p_init): the reference schedule, written for 10,000 queries
_SCHEDULE = ((0.001, 1), (0.005, 2), (0.02, 4), (0.05, 8), (0.1, 16), (0.2, 32), (0.4, 64), (0.6, 128),
             (0.8, 256), (math.inf, 512))


def p_selection(p_init: float, it: int, budget: int) -> float:
    """The fraction of pixels a square covers at iteration ``it`` of ``budget``."""
    scaled = int(it / budget * 10000) / 10000
    for limit, divisor in _SCHEDULE:
        if scaled <= limit:
            return p_init / divisor
    return p_init / 512  # pragma: no cover


@torch.no_grad()
def margin(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """logit of the true class minus the largest other logit, (N,); <= 0 means fooled."""
    logits = model(x).float()
    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], -math.inf).amax(1)
    return true - others


def _signs(shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    return (torch.randint(0, 2, shape) * 2 - 1).float().to(device)


def _corners(k: int, high: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Random top-left corners (k,), (k,) of squares that fit: each in [0, high)."""
    return torch.randint(0, high, (k,)).to(device), torch.randint(0, high, (k,)).to(device)


def _window(k: int, top: torch.Tensor, left: torch.Tensor, s: int) -> tuple[torch.Tensor, ...]:
    """Advanced indices selecting an s x s window at (top, left) of each of k images: x[idx] is (k, s, s, C)."""
    ar = torch.arange(s, device=top.device)
    rows, cols = (top[:, None] + ar)[:, :, None], (left[:, None] + ar)[:, None, :]
    return torch.arange(k, device=top.device)[:, None, None], slice(None), rows, cols


def _rectangles(a: int, b: int, device: torch.device) -> torch.Tensor:
    """The reference's concentric-rectangle pattern (a, b), unit L2 norm."""
    delta = torch.zeros(a, b, device=device)
    ca, cb = a // 2 + 1 - 1, b // 2 + 1 - 1
    for r in range(max(a // 2 + 1, b // 2 + 1)):
        delta[max(ca, 0): min(ca + 2 * r + 1, a), max(cb, 0): min(cb + 2 * r + 1, b)] += 1.0 / (r + 1) ** 2
        ca, cb = ca - 1, cb - 1
    return delta / delta.pow(2).sum().sqrt()


def _eta(s: int, device: torch.device) -> torch.Tensor:
    """The reference's L2 window (s, s): two rectangle patterns of opposite sign, unit norm, random orientation."""
    delta = torch.cat([_rectangles(s // 2, s, device), -_rectangles(s - s // 2, s, device)])
    delta = delta / delta.pow(2).sum().sqrt()
    return delta.T if torch.rand(1).item() > 0.5 else delta


def _l2(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).norm(dim=1).view(-1, *[1] * (x.dim() - 1))


def _start(x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    n, c, h, w = x.shape
    if norm == "linf":
        return (x + eps * _signs((n, c, 1, w), x.device)).clamp(0.0, 1.0)
    s = max(h // 5, 1)
    delta = torch.zeros_like(x)
    top = (h - s * 5) // 2
    for i in range(h // s):
        left = (w - s * 5) // 2
        for _ in range(w // s):
            if top + i * s + s <= h and left + s <= w:
                delta[:, :, top + i * s: top + i * s + s, left: left + s] += (
                    _eta(s, x.device) * _signs((n, c, 1, 1), x.device))
            left += s
    return (x + eps * delta / _l2(delta).clamp_min(1e-12)).clamp(0.0, 1.0)


_REDRAWS = 100  # sign redraws per proposal at most; each redraw changes a window with probability >= 1/2


def _propose_linf(x: torch.Tensor, best: torch.Tensor, eps: float, p: float) -> torch.Tensor:
    """A new candidate per example: one s x s window of ``best`` set to clean +-eps (one sign per channel).

    As in the reference code, the signs are drawn again for an example whose window would not change (a
    proposal equal to ``best`` would spend a query on nothing: about 28% of proposals on 1-channel digits)."""
    k, c, h, w = x.shape
    s = min(max(int(round(math.sqrt(p * h * w))), 1), h - 1)
    idx = _window(k, *_corners(k, h - s, x.device), s)
    low, high, current = (x[idx] - eps).clamp(0.0, 1.0), (x[idx] + eps).clamp(0.0, 1.0), best[idx]  # (k, s, s, c)
    signs = _signs((k, 1, 1, c), x.device)
    for _ in range(_REDRAWS):
        window = torch.where(signs > 0, high, low)
        same = (window == current).flatten(1).all(1)
        if not bool(same.any()):
            break
        signs = torch.where(same[:, None, None, None], _signs((k, 1, 1, c), x.device), signs)
    new = best.clone()
    new[idx] = window
    return new


def _propose_l2(x: torch.Tensor, best: torch.Tensor, eps: float, p: float) -> torch.Tensor:
    k, c, h, w = x.shape
    s = min(max(int(round(math.sqrt(p * h * w))), 3), h - 1)
    s = s + 1 if s % 2 == 0 and s + 1 < h else s
    delta = best - x
    first, second = _window(k, *_corners(k, h - s, x.device), s), _window(k, *_corners(k, h - s, x.device), s)
    mask = torch.zeros_like(x)
    mask[first], mask[second] = 1.0, 1.0
    in_first = delta[first]  # (k, s, s, c)
    norm_first = in_first.pow(2).sum((1, 2), keepdim=True).sqrt()
    norm_image, norm_windows = _l2(delta), _l2(delta * mask)  # (k, 1, 1, 1)
    new = _eta(s, x.device)[None, :, :, None] * _signs((k, 1, 1, c), x.device) + in_first / (norm_first + 1e-12)
    room = ((eps ** 2 - norm_image ** 2).clamp_min(0.0) / c + norm_windows ** 2).sqrt()
    new = new / (new.pow(2).sum((1, 2), keepdim=True).sqrt() + 1e-12) * room
    delta[second] = 0.0
    delta[first] = new
    return (x + eps * delta / _l2(delta).clamp_min(1e-12)).clamp(0.0, 1.0)


def square_attack(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, eps: float, norm: str,
                  queries: int, p_init: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Adversarial images (N, C, H, W) in [0,1] within ``eps`` in ``norm``, and the queries (N,) each used."""
    x, y = images, labels
    best = _start(x, eps, norm)
    loss = margin(model, best, y)
    used = torch.ones(len(x), dtype=torch.long, device=x.device)
    propose = _propose_linf if norm == "linf" else _propose_l2
    for it in range(1, queries):
        active = (loss > 0).nonzero().flatten()
        if not len(active):
            break
        candidate = propose(x[active], best[active], eps, p_selection(p_init, it - 1, queries))
        new_loss = margin(model, candidate, y[active])
        used[active] += 1
        better = new_loss < loss[active]
        best[active[better]], loss[active[better]] = candidate[better], new_loss[better]
    return best, used

