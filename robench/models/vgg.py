"""VGG-19 with a single FC head (appendix C.5); defective layers on the first four 3x3 convs."""

from __future__ import annotations

from torch import nn

from robench.models.common import conv_bn_act, head, pool_or_skip
from robench.models.defective import DefectSpec

_CFG = [1, 1, "M", 2, 2, "M", 4, 4, 4, 4, "M", 8, 8, 8, 8, "M", 8, 8, 8, 8, "M"]


def vgg19(num_classes: int, in_channels: int, width: int, spec: DefectSpec, strides=(2, 2, 2, 2, 2)) -> nn.Module:
    n_convs = sum(1 for c in _CFG if c != "M")
    layers: list[nn.Module] = []
    cin, conv_i, pool_i = in_channels, 0, 0
    for c in _CFG:
        if c == "M":
            layers.append(pool_or_skip(strides[pool_i]))
            pool_i += 1
            continue
        group = "bottom" if conv_i < 4 else "top" if conv_i >= n_convs - 4 else ""
        cout = c * width * spec.widen_for(group)
        layers.append(conv_bn_act(cin, cout, 3, 1, group))
        cin, conv_i = cout, conv_i + 1
    return nn.Sequential(*layers, head(cin, num_classes))
