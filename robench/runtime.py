"""Where and how tensors run: device choice, AMP, channels_last, batched inference."""

from __future__ import annotations

import contextlib
import platform
from collections.abc import Iterator

import torch
from torch import nn


def pick_device(device: str | None = None) -> torch.device:
    """The requested device, else CUDA when present, else CPU."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 autocast on CUDA where supported (no loss scaling needed), fp16 otherwise; None on CPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    dtype = amp_dtype(device)
    return torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()


def prepare(model: nn.Module, device: torch.device) -> nn.Module:
    """Move a model to ``device``; channels_last on CUDA."""
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if device.type == "cuda" else model


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if device.type == "cuda" and x.ndim == 4 else x


def batches(n: int, batch_size: int) -> Iterator[slice]:
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


@torch.inference_mode()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 512, device: torch.device | None = None,
            logits: bool = False) -> torch.Tensor:
    """Labels (N,) int64 (or logits (N, K) float32) of ``model`` on images (N, C, H, W) in [0,1]."""
    device = device or next(model.parameters()).device
    outs = []
    for sl in batches(len(images), batch_size):
        with autocast(device):
            out = model(to_device(images[sl], device)).float()
        outs.append((out if logits else out.argmax(1)).cpu())
    if not outs:
        return torch.empty(0, dtype=torch.float32 if logits else torch.int64)
    return torch.cat(outs)


def frozen(model: nn.Module) -> nn.Module:
    """Eval mode and requires_grad=False on every weight: attacks then skip weight gradients."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def environment() -> dict[str, str]:
    """Versions recorded with every model and set: robench, torch, torchvision, Python."""
    import torchvision

    from robench._version import __version__

    return {"robench": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "python": platform.python_version()}
