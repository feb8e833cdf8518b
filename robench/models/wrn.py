"""Madry's CIFAR wide ResNet (WRN-32-10): stem + 3 stages of 5 pre-activation units.

Widths 16 -> 160/320/640 at the default --width 16. Appendix C.6 lost the block numbers; robench
reads them as the 1st and 2nd blocks (block 0 being the stem conv), i.e. stages 1 and 2.
"""

from __future__ import annotations

from torch import nn

from robench.models.common import head
from robench.models.defective import DefectSpec, Slot
from robench.models.resnet import PreActBlock, stages


def wrn32_10(num_classes: int, in_channels: int, width: int, spec: DefectSpec, strides=(1, 2, 2)) -> nn.Module:
    stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), Slot(""))
    widths = [10 * width, 20 * width, 40 * width]
    body, cout = stages(PreActBlock, width, widths, [5, 5, 5], strides, ["bottom", "bottom", "top"], spec)
    return nn.Sequential(stem, body, nn.BatchNorm2d(cout), nn.ReLU(), head(cout, num_classes))
