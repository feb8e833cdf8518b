"""The networks robench builds: normalisation, optional upsampling and a registered architecture's body.

Every model takes NCHW float32 input in [0, 1]. Its first layer subtracts the per-pixel mean of
the training set (a buffer, saved with the weights), so attack libraries can always use
``clip_values=(0, 1)`` / ``bounds=(0, 1)``.
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

import torch
from torch import nn

from robench.errors import RobenchError
from robench.models.defective import DefectSpec, apply_defects, slots
from robench.models.registry import ModelEntry, model_entry
from robench.records import ModelConfig


class PixelMean(nn.Module):
    """Subtracts a per-pixel mean of shape (C, H, W), computed on the training set."""

    def __init__(self, in_channels: int, input_size: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_channels, input_size, input_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.mean.to(dtype=x.dtype)


class RobenchNet(nn.Module):
    """Normalisation, optional input upsampling, then the architecture's body.

    Input (N, C, S, S) float32 in [0, 1]; output (N, num_classes) logits.
    """

    def __init__(self, body: nn.Module, in_channels: int, input_size: int, upsample: float, config: ModelConfig):
        super().__init__()
        self.normalize = PixelMean(in_channels, input_size)
        self.upsample = nn.Upsample(scale_factor=upsample, mode="bilinear") if upsample != 1 else nn.Identity()
        self.body = body
        self.config = config

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.upsample(self.normalize(x)))

    def set_mean(self, mean: torch.Tensor) -> None:
        """Set the per-pixel mean (C, H, W) of the training set."""
        self.normalize.mean.copy_(mean)


class EnsembleNet(nn.Module):
    """Averages the logits of its members (the papers' EN ensembles and fused sources).

    Input (N, C, H, W) in [0, 1]; output (N, num_classes), the mean of the members' logits.
    """

    def __init__(self, members: list[nn.Module], config: ModelConfig | None = None) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.config = config

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members]).mean(0)

    def set_mean(self, mean: torch.Tensor) -> None:
        for m in self.members:
            m.set_mean(mean)


_SPEC_FIELDS = {f.name for f in fields(DefectSpec)}


def create_model(
    name: str,
    *,
    num_classes: int = 10,
    in_channels: int = 3,
    input_size: int = 32,
    width: int | None = None,
    upsample: float = 1.0,
    strides: tuple[int, ...] | list[int] | None = None,
    ensemble: int = 1,
    **defects: Any,
) -> nn.Module:
    """Build a registered architecture, optionally defective.

    ``defects`` are the fields of :class:`DefectSpec` (keep, placement, keep_top, mask, widen,
    mask_seed, regularizer, drop_keep, block_size). ``ensemble=N`` builds N members whose masks
    are drawn with seeds mask_seed, mask_seed+1, ... and averages their logits.
    The returned model maps (N, in_channels, input_size, input_size) in [0,1] to (N, num_classes); its ``config``
    is the :class:`~robench.records.ModelConfig` a record keeps to build it again.
    """
    entry = model_entry(name)
    unknown = set(defects) - _SPEC_FIELDS
    if unknown:
        raise RobenchError(f"unknown model option(s) {', '.join(sorted(unknown))} for create_model")
    spec = DefectSpec(**defects)
    width = entry.default_width if width is None else int(width)
    _check_geometry(entry, width, upsample, strides, ensemble, num_classes, in_channels, input_size)
    config = ModelConfig(name, num_classes, in_channels, input_size, width=width, upsample=upsample,
                         strides=tuple(strides) if strides else None, ensemble=ensemble, defect=spec)
    if ensemble > 1:
        members = [_build(entry, config, replace(spec, mask_seed=spec.mask_seed + i)) for i in range(ensemble)]
        return EnsembleNet(members, config)
    return _build(entry, config, spec)


def _build(entry: ModelEntry, config: ModelConfig, spec: DefectSpec) -> RobenchNet:
    kwargs = {"strides": config.strides} if config.strides else {}
    body = entry.build(config.num_classes, config.in_channels, config.width, spec, **kwargs)
    net = RobenchNet(body, config.in_channels, config.input_size, config.upsample, config)
    example = torch.zeros(1, config.in_channels, config.input_size, config.input_size)
    apply_defects(net, spec, example)
    return net


def _check_geometry(entry, width, upsample, strides, ensemble, num_classes, in_channels, input_size) -> None:
    checks = [
        (width >= 1, f"--width must be a positive integer, got {width}"),
        (upsample >= 1, f"--upsample must be >= 1, got {upsample}"),
        (ensemble >= 1, f"ensemble size must be >= 1, got {ensemble}"),
        (num_classes >= 2, f"num_classes must be >= 2, got {num_classes}"),
        (in_channels in (1, 3), f"in_channels must be 1 or 3, got {in_channels}"),
        (input_size >= 8, f"input size must be at least 8 px, got {input_size}"),
    ]
    for ok, message in checks:
        if not ok:
            raise RobenchError(message)
    if strides is not None:
        if entry.n_strides == 0:
            raise RobenchError(f"{entry.name} does not support --strides; it fixes its downsampling")
        if len(strides) != entry.n_strides or any(s not in (1, 2) for s in strides):
            raise RobenchError(
                f"--strides for {entry.name} takes {entry.n_strides} values of 1 or 2, got {list(strides)}"
            )


def count_masked(model: nn.Module) -> tuple[int, int]:
    """(live, total) mask entries over every masked slot, for reporting the effective keep."""
    live = total = 0
    for s in slots(model):
        if s.mask is not None:
            live += int(s.mask.sum().item())
            total += s.mask.numel()
    return live, total
