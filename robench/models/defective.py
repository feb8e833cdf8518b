"""The defective convolutional layer: a fixed random binary mask on a conv's output.

The authors' reference code applies the mask after BatchNorm and before ReLU,
``relu(mask * bn(conv(x)))``, so a defective neuron always outputs exactly 0. Architectures
mark every such place with a :class:`Slot`; :func:`apply_defects` fills the slots of the
chosen placement groups with masks drawn once from Bernoulli(keep) by a seeded generator.
Masks are buffers: they are saved with the weights and never touched by the optimiser.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import DropBlock2d

from robench.records.config import DefectSpec  # noqa: F401  (re-exported: the spec is part of a model's record)


class _MaskedReLU(torch.autograd.Function):
    """``relu(mask * x)`` with ReLU's own backward: the gradient passes where the output is positive.

    A dead neuron's output is exactly 0, so that one test also blocks its gradient, and the mask costs no
    backward pass of its own (``benchmarks/bench_train.py``).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = torch.relu(x).mul_(mask)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (out,) = ctx.saved_tensors
        return torch.ops.aten.threshold_backward(grad, out, 0), None


class Slot(nn.Module):
    """A point after a conv (and its BN) where a mask and/or a dropout baseline may act.

    Input and output: (N, C, H, W). ``group`` is 'bottom', 'top' or '' (neither). With ``relu`` the slot
    also applies the ReLU that follows it, ``relu(mask * x)``, fused into one autograd step.
    """

    def __init__(self, group: str = "", relu: bool = False) -> None:
        super().__init__()
        self.group = group
        self.relu = relu
        self.register_buffer("mask", None)
        self.drop: nn.Module | None = None

    def set_mask(self, mask: torch.Tensor) -> None:
        """Install a fixed mask of shape (C, H, W), (C, 1, 1) or (1, H, W)."""
        self.mask = mask.to(torch.float32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = None if self.mask is None else self.mask.to(dtype=x.dtype)
        if self.relu:
            x = torch.relu(x) if mask is None else _MaskedReLU.apply(x, mask)
        elif mask is not None:
            # In place: a slot always follows a BN or conv, whose backward does not need its output.
            x = x.mul_(mask)
        if self.drop is not None:
            x = self.drop(x)
        return x

    def extra_repr(self) -> str:
        return f"group={self.group!r}, relu={self.relu}"


def draw_mask(shape: tuple[int, int, int], keep: float, mode: str, generator: torch.Generator) -> torch.Tensor:
    """Draw a binary mask for an output of shape (C, H, W) from Bernoulli(keep).

    neuron: (C, H, W), independent per neuron; channel: (C, 1, 1), whole channels dead;
    shared: (1, H, W), one spatial mask shared by every channel.
    """
    c, h, w = shape
    size = {"neuron": (c, h, w), "channel": (c, 1, 1), "shared": (1, h, w)}[mode]
    return (torch.rand(size, generator=generator) < keep).to(torch.float32)


def slots(model: nn.Module) -> list[Slot]:
    """All slots of a model, in module order."""
    return [m for m in model.modules() if isinstance(m, Slot)]


def slot_shapes(model: nn.Module, example: torch.Tensor) -> dict[Slot, tuple[int, int, int]]:
    """Run one dry forward pass on ``example`` (1, C, H, W) and record each slot's (C, H, W)."""
    shapes: dict[Slot, tuple[int, int, int]] = {}

    def record(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        shapes[module] = tuple(output.shape[1:])

    hooks = [s.register_forward_hook(record) for s in slots(model)]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(example)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return shapes


def apply_defects(model: nn.Module, spec: DefectSpec, example: torch.Tensor) -> int:
    """Fill the slots of ``model`` per ``spec``; returns the number of masked layers.

    Masks are drawn in module order from one generator seeded with ``spec.mask_seed``, so the
    same spec and architecture always give the same masks.
    """
    keeps = spec.group_keeps()
    shapes = slot_shapes(model, example)
    generator = torch.Generator().manual_seed(spec.mask_seed)
    masked = 0
    for slot in slots(model):
        if slot.group in keeps:
            slot.set_mask(draw_mask(shapes[slot], keeps[slot.group], spec.mask, generator))
            masked += 1
        if spec.regularizer != "none" and slot.group == "top":
            slot.drop = make_regularizer(spec)
    return masked


def make_regularizer(spec: DefectSpec) -> nn.Module:
    """SpatialDropout (nn.Dropout2d) or DropBlock (torchvision) with drop rate 1 - drop_keep."""
    p = 1.0 - spec.drop_keep
    if spec.regularizer == "spatial-dropout":
        return nn.Dropout2d(p)
    return DropBlock2d(p, spec.block_size)
