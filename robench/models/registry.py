"""The model registry: architectures register by name, with what ``--help`` shows about them.

The registry imports no torch: an entry names its builder (``"module:function"``), imported when a model is
built (``robench.models.network.create_model``), so the CLI lists architectures and their placements at once.
Built-in architectures are registered at the bottom of this file; your own register with
:func:`register_model` (as a decorator, or with ``builder=``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from robench._lazy import resolve
from robench.errors import lookup
from robench.records.config import MASK_MODES, PLACEMENTS, REGULARIZERS  # noqa: F401  (re-exported)


@dataclass(frozen=True)
class ModelEntry:
    """One registered architecture. ``builder(num_classes, in_channels, width, spec, strides) -> nn.Module``, or
    its ``"module:function"`` name."""

    name: str
    builder: Callable[..., Any] | str
    default_width: int
    bottom: str
    top: str
    n_strides: int = 0
    description: str = ""

    @property
    def build(self) -> Callable[..., Any]:
        """The builder itself (its module imported on first use)."""
        return self.builder if callable(self.builder) else resolve(self.builder)


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str, *, default_width: int, bottom: str, top: str, n_strides: int = 0, description: str = "",
    builder: Callable[..., Any] | str | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register an architecture: ``builder`` (a callable or ``"module:function"``), or decorate the builder.

    A duplicate name is an error. The builder is called as ``builder(num_classes, in_channels, width, spec,
    strides=...) -> nn.Module``.
    """

    def wrap(fn: Callable[..., Any] | str) -> Callable[..., Any] | str:
        if name in _REGISTRY:
            raise ValueError(f"model '{name}' is already registered")
        _REGISTRY[name] = ModelEntry(name, fn, default_width, bottom, top, n_strides, description)
        return fn

    if builder is not None:
        wrap(builder)
    return wrap


def list_models() -> list[str]:
    """Names of every registered architecture, sorted."""
    return sorted(_REGISTRY)


def model_entry(name: str) -> ModelEntry:
    """The registry entry for ``name``; unknown names raise a RobenchError with suggestions."""
    return lookup(_REGISTRY, "architecture", name)


# ---------------------------------------------------------------- the built-in zoo (appendix C of the papers)

register_model("alexnet", builder="robench.models.small:alexnet", default_width=64, n_strides=3,
               bottom="conv1 + conv2", top="conv3 + conv4 + conv5",
               description="AlexNet, CIFAR variant with BN and global average pooling; --strides sets the 3 pools")
register_model("tiny", builder="robench.models.small:tiny", default_width=16, n_strides=2,
               bottom="conv1 + conv2", top="conv3",
               description="Three-conv CNN for fast tests and CPU demos")
register_model("resnet18", builder="robench.models.resnet:resnet18", default_width=64, n_strides=4,
               bottom="stem conv + layer1 + layer2 (blocks 0-2)", top="layer3 + layer4 (blocks 3-4)",
               description="ResNet-18, CIFAR variant (3x3 stem, no max-pool)")
register_model("resnet50", builder="robench.models.resnet:resnet50", default_width=64, n_strides=4,
               bottom="3x3 convs of stem + layer1 + layer2", top="3x3 convs of layer3 + layer4",
               description="ResNet-50, CIFAR variant (bottlenecks)")
register_model("preactresnet18", builder="robench.models.resnet:preactresnet18", default_width=64, n_strides=4,
               bottom="stem conv + layer1 + layer2", top="layer3 + layer4",
               description="Pre-activation ResNet-18, CIFAR variant")
register_model("senet18", builder="robench.models.resnet:senet18", default_width=64, n_strides=4,
               bottom="stem conv + first three SE blocks", top="last three SE blocks",
               description="SENet-18, pre-activation version (as in the papers)")
register_model("densenet121", builder="robench.models.densenet:densenet121", default_width=32,
               bottom="stem conv + 3x3 convs of dense blocks 1-2", top="3x3 convs of dense blocks 3-4",
               description="DenseNet-121, CIFAR variant; --width is the growth rate (32 in the papers)")
register_model("vgg19", builder="robench.models.vgg:vgg19", default_width=64, n_strides=5,
               bottom="first four 3x3 convs", top="last four 3x3 convs",
               description="VGG-19 with BN and one FC layer; --strides sets the five max-pools (1 = no pool)")
register_model("wrn32_10", builder="robench.models.wrn:wrn32_10", default_width=16, n_strides=3,
               bottom="stages 1-2 (blocks 1 and 2)", top="stage 3 (block 3)",
               description="Wide ResNet 32-10 (Madry's CIFAR model); --width is the stem width (16)")
