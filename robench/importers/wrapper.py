"""The wrapper every import is stored as: input (N, C, H, W) float32 in [0, 1] -> the dataset's logits.

An imported model is stored as one :class:`ImportedNet`: optional gray-to-RGB, the normalisation, the imported
network, then an optional class map (model outputs -> dataset labels). Its weights (wrapper buffers included) are
the model's ``model.safetensors``; the record's ``origin.details`` say how to rebuild the untrained network they fit
(:mod:`robench.importers.registry`).
"""

from __future__ import annotations

import torch
from torch import nn

from robench.datasets import DatasetInfo
from robench.errors import RobenchError
from robench.records import ImportDetails, ModelConfig


class Normalize(nn.Module):
    """(x - mean) / std per channel; ``mean`` and ``std`` hold 1 or C values (buffers, saved with the weights)."""

    def __init__(self, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(-1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


class GrayToRGB(nn.Module):
    """(N, 1, H, W) -> (N, 3, H, W), the gray channel repeated (differentiable, so attacks see one channel)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.expand(-1, 3, -1, -1)


class ClassMap(nn.Module):
    """Model logits (N, K_model) -> dataset logits (N, K_data): each dataset label takes the log-sum-exp of the
    model outputs mapped to it (one output: its logit unchanged). ``mask`` (K_data, K_model) bool is a buffer."""

    def __init__(self, num_classes: int, model_classes: int) -> None:
        super().__init__()
        self.register_buffer("mask", torch.zeros(num_classes, model_classes, dtype=torch.bool))

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.unsqueeze(1).masked_fill(~self.mask, float("-inf")).logsumexp(-1)


class ImportedNet(nn.Module):
    """An imported network as robench stores it: input (N, C, H, W) float32 in [0, 1] -> (N, num_classes) logits.

    ``gray_to_rgb`` repeats a 1-channel input to 3; ``mean``/``std`` normalise; ``class_map`` (when given,
    (K_data, K_model) classes) maps the network's outputs to the dataset's labels. ``fixed_mode`` networks
    (exported programs) keep the train/eval mode they were exported in.
    """

    def __init__(self, net: nn.Module, mean: list[float], std: list[float], gray_to_rgb: bool = False,
                 class_map: tuple[int, int] | None = None, fixed_mode: bool = False,
                 config: ModelConfig | None = None):
        super().__init__()
        self.adapt = GrayToRGB() if gray_to_rgb else nn.Identity()
        self.normalize = Normalize(mean, std)
        self.net = net
        self.class_map = ClassMap(*class_map) if class_map else nn.Identity()
        self.fixed_mode = fixed_mode
        self.config = config

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.class_map(self.net(self.normalize(self.adapt(x))))

    def train(self, mode: bool = True) -> ImportedNet:
        self.training = mode
        for name, child in self.named_children():
            if not (name == "net" and self.fixed_mode):
                child.train(mode)
        return self


def wrap_net(net: nn.Module, details: ImportDetails, config: ModelConfig | None = None) -> ImportedNet:
    """The stored wrapper around ``net`` as the import ``details`` describe it."""
    class_map = (details.num_classes, details.model_classes) if details.class_map else None
    return ImportedNet(net, details.mean, details.std, gray_to_rgb=bool(details.gray_to_rgb), class_map=class_map,
                       fixed_mode=details.form == "exported", config=config)


def check_channels(wanted: int | None, data: DatasetInfo, gray_to_rgb: bool) -> int:
    """The channels to feed a network that takes ``wanted`` channels (None: unknown): the dataset's, or 3 with
    --gray-to-rgb; a mismatch with the dataset is a RobenchError."""
    if gray_to_rgb and data.in_channels != 1:
        raise RobenchError(f"--gray-to-rgb repeats the gray channel of 1-channel data; {data.ref.label} has "
                           f"{data.in_channels} channels, drop the option")
    given = 3 if gray_to_rgb else data.in_channels
    if wanted is None or wanted == given:
        return given
    if wanted == 3 and data.in_channels == 1:
        raise RobenchError(f"the model takes 3-channel images and {data.ref.label} has 1 channel; pass --gray-to-rgb "
                           f"to feed it the gray channel repeated three times")
    if gray_to_rgb and wanted == data.in_channels:
        raise RobenchError(f"the model takes {wanted}-channel images, as {data.ref.label} has; drop --gray-to-rgb "
                           f"(it feeds 3 channels)")
    raise RobenchError(f"the model takes {wanted}-channel images and {data.ref.label} has {data.in_channels}; "
                       f"import a model made for this data")
