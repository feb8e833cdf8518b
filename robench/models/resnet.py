"""CIFAR-style ResNets (3x3 stem, no max-pool): resnet18, resnet50 and preactresnet18.

Appendix C: ResNet-18 has 5 blocks (block 0 = stem conv, blocks 1-4 = layer1..layer4);
bottom = blocks 0, 1, 2. ResNet-50: the 3x3 convs of the first three blocks.
"""

from __future__ import annotations

import torch
from torch import nn

from robench.models.common import conv_bn_act, head
from robench.models.defective import DefectSpec, Slot


def _shortcut(cin: int, cout: int, stride: int) -> nn.Module:
    if stride == 1 and cin == cout:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int, group: str) -> None:
        super().__init__()
        self.branch = nn.Sequential(
            conv_bn_act(cin, planes, 3, stride, group),
            nn.Conv2d(planes, planes, 3, 1, 1, bias=False), nn.BatchNorm2d(planes), Slot(group),
        )
        self.shortcut = _shortcut(cin, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.branch(x) + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1; only the 3x3 conv carries a slot (the papers mask the 3x3 convs)."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, group: str) -> None:
        super().__init__()
        out = planes * self.expansion
        self.branch = nn.Sequential(
            conv_bn_act(cin, planes, 1),
            conv_bn_act(planes, planes, 3, stride, group),
            nn.Conv2d(planes, out, 1, bias=False), nn.BatchNorm2d(out),
        )
        self.shortcut = _shortcut(cin, out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.branch(x) + self.shortcut(x))


class PreActBlock(nn.Module):
    """Pre-activation block, optionally with squeeze-and-excitation (SENet-18).

    Pre-activation convs are followed directly by their slot, so a dead neuron's conv output is 0.
    """

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int, group: str, se: bool = False) -> None:
        super().__init__()
        self.pre = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU())
        self.branch = nn.Sequential(
            nn.Conv2d(cin, planes, 3, stride, 1, bias=False), Slot(group),
            nn.BatchNorm2d(planes), nn.ReLU(),
            nn.Conv2d(planes, planes, 3, 1, 1, bias=False), Slot(group),
        )
        self.se = (
            nn.Sequential(
                nn.AdaptiveAvgPool2d(1), nn.Conv2d(planes, max(planes // 16, 1), 1), nn.ReLU(),
                nn.Conv2d(max(planes // 16, 1), planes, 1), nn.Sigmoid(),
            )
            if se
            else None
        )
        self.shortcut = (
            None if stride == 1 and cin == planes else nn.Conv2d(cin, planes, 1, stride, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.pre(x)
        out = self.branch(pre)
        if self.se is not None:
            out = out * self.se(out)
        return out + (x if self.shortcut is None else self.shortcut(pre))


def stages(block, cin: int, widths: list[int], depths: list[int], strides, groups: list[str], spec, **kw):
    """Stack residual stages; widths of defective groups are multiplied by spec.widen."""
    layers = []
    for i, (w, d, s) in enumerate(zip(widths, depths, strides, strict=True)):
        group = groups[i] if isinstance(groups[i], str) else None
        for j in range(d):
            g = group if group is not None else groups[i][j]
            planes = w * spec.widen_for(g)
            layers.append(block(cin, planes, s if j == 0 else 1, g, **kw))
            cin = planes * block.expansion
    return nn.Sequential(*layers), cin


def _resnet(block, depths, num_classes, in_channels, width, spec: DefectSpec, strides, pre_act=False, se=False):
    stem_ch = width * spec.widen_for("bottom")
    if pre_act:
        stem = nn.Sequential(nn.Conv2d(in_channels, stem_ch, 3, 1, 1, bias=False), Slot("bottom"))
    else:
        stem = conv_bn_act(in_channels, stem_ch, 3, 1, "bottom")
    widths = [width, 2 * width, 4 * width, 8 * width]
    if se:  # appendix C.4: the first three SE blocks are bottom; mirror it with the last three as top.
        groups = [["bottom", "bottom"], ["bottom", ""], ["", "top"], ["top", "top"]]
    else:
        groups = ["bottom", "bottom", "top", "top"]
    kw = {"se": True} if se else {}
    body, cout = stages(block, stem_ch, widths, depths, strides, groups, spec, **kw)
    final = [nn.BatchNorm2d(cout), nn.ReLU()] if pre_act else []
    return nn.Sequential(stem, body, *final, head(cout, num_classes))


def resnet18(num_classes, in_channels, width, spec, strides=(1, 2, 2, 2)):
    # 'strides' are the first-block strides of layer1..layer4 (CIFAR layout: 1, 2, 2, 2).
    return _resnet(BasicBlock, [2, 2, 2, 2], num_classes, in_channels, width, spec, strides)


def resnet50(num_classes, in_channels, width, spec, strides=(1, 2, 2, 2)):
    return _resnet(Bottleneck, [3, 4, 6, 3], num_classes, in_channels, width, spec, strides)


def preactresnet18(num_classes, in_channels, width, spec, strides=(1, 2, 2, 2)):
    return _resnet(PreActBlock, [2, 2, 2, 2], num_classes, in_channels, width, spec, strides,
                   pre_act=True)


def senet18(num_classes, in_channels, width, spec, strides=(1, 2, 2, 2)):
    return _resnet(PreActBlock, [2, 2, 2, 2], num_classes, in_channels, width, spec, strides,
                   pre_act=True, se=True)

