"""DenseNet-121 for CIFAR (growth 32; 3x3 stem; dense blocks of 6, 12, 24, 16 bottlenecks).

Appendix C.3: defective layers on the 3x3 convs of the first three blocks (stem, dense1, dense2).
"""

from __future__ import annotations

import torch
from torch import nn

from robench.models.common import head
from robench.models.defective import DefectSpec, Slot


class DenseLayer(nn.Module):
    """BN-ReLU-1x1 conv (4g) - BN-ReLU-3x3 conv (g) - Slot; output concatenated to the input."""

    def __init__(self, cin: int, growth: int, group: str) -> None:
        super().__init__()
        self.f = nn.Sequential(
            nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, 4 * growth, 1, bias=False),
            nn.BatchNorm2d(4 * growth), nn.ReLU(), nn.Conv2d(4 * growth, growth, 3, 1, 1, bias=False), Slot(group),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.f(x), x], 1)


def _transition(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, cout, 1, bias=False), nn.AvgPool2d(2, ceil_mode=True)
    )


def densenet121(num_classes: int, in_channels: int, width: int, spec: DefectSpec) -> nn.Module:
    growth = width
    groups = ["bottom", "bottom", "top", "top"]
    cin = 2 * growth * spec.widen_for("bottom")
    layers: list[nn.Module] = [nn.Conv2d(in_channels, cin, 3, 1, 1, bias=False), Slot("bottom")]
    for i, depth in enumerate([6, 12, 24, 16]):
        g = growth * spec.widen_for(groups[i])
        for _ in range(depth):
            layers.append(DenseLayer(cin, g, groups[i]))
            cin += g
        if i < 3:
            layers.append(_transition(cin, cin // 2))
            cin //= 2
    layers += [nn.BatchNorm2d(cin), nn.ReLU(), head(cin, num_classes)]
    return nn.Sequential(*layers)
