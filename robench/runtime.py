"""Where and how tensors run: device choice, numeric precision (autocast), torch.compile, channels_last,
batched inference."""

from __future__ import annotations

import contextlib
import platform
from collections.abc import Iterator

import torch
from torch import nn

from robench.checks import check
from robench.context import PRECISIONS
from robench.errors import RobenchError, UsageError


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The requested device, else CUDA when present, else CPU.

    A name that is not a device (``gpu``) or a device this machine lacks (``cuda`` without a GPU, ``cuda:3`` on a
    two-GPU node, ``mps`` off a Mac) is a UsageError naming the devices there are.
    """
    if not device:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, torch.device):
        return device
    check("device", device)
    dev = torch.device(device.strip())
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UsageError(f"device '{device}': torch {torch.__version__} sees no CUDA GPU on this machine; use "
                             f"--device cpu (or leave --device out)")
        if dev.index is not None and dev.index >= count:
            raise UsageError(f"device '{device}': this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}; "
                             f"pick one of those")
    elif dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise UsageError(f"device '{device}': MPS (Apple GPU) is not available here; use --device cpu")
    elif dev.type == "xpu" and not (hasattr(torch, "xpu") and torch.xpu.is_available()):
        raise UsageError(f"device '{device}': no Intel XPU is available here; use --device cpu")
    return dev


_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str) -> str:
    """``precision`` when it is one of :data:`PRECISIONS`, else a RobenchError naming the choices."""
    if precision not in _DTYPES:
        raise RobenchError(f"unknown precision '{precision}': choose one of {', '.join(PRECISIONS)}")
    return precision


def default_precision(device: torch.device, training: bool = False) -> str:
    """The precision used when none is given: fp32, except training on CUDA (bf16 where the GPU has it, else fp16).

    Attacks and evaluation default to fp32 on every device: gradients of a reduced-precision forward pass make
    weaker attacks, and a set filtered in one precision and scored in another can disagree with itself.
    """
    if training and device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def resolve_precision(precision: str | None, device: torch.device, training: bool = False) -> str:
    """The checked precision to run in: the given one, else :func:`default_precision`."""
    return default_precision(device, training) if precision is None else check_precision(precision)


def precision_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a precision: None for fp32 (no autocast), torch.bfloat16, torch.float16."""
    return _DTYPES[check_precision(precision)]


def autocast(device: torch.device, precision: str = "fp32") -> contextlib.AbstractContextManager:
    """Autocast to ``precision`` on ``device`` (CPU too); fp32 is no autocast at all."""
    dtype = precision_dtype(precision)
    return torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()


class AutocastModel(nn.Module):
    """Runs the wrapped model under autocast to ``precision`` and returns float32 logits (N, K)."""

    def __init__(self, model: nn.Module, precision: str) -> None:
        super().__init__()
        self.model, self.precision = model, check_precision(precision)
        self.training = model.training

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(x.device, self.precision):
            return self.model(x).float()


def in_precision(model: nn.Module, precision: str) -> nn.Module:
    """``model`` itself for fp32, else an :class:`AutocastModel` around it."""
    return model if check_precision(precision) == "fp32" else AutocastModel(model, precision)


COMPILE_BACKEND = "inductor"  # torch.compile's default; tests use "eager" to skip code generation


def compile_model(model: nn.Module) -> nn.Module:
    """``torch.compile(model)``; a RobenchError when this torch/Python cannot compile.

    The compiled module shares the model's parameters, so checkpoints keep saving ``model.state_dict()``.
    """
    import torch._dynamo

    if not hasattr(torch, "compile") or not torch._dynamo.is_dynamo_supported():
        raise RobenchError(f"--compile: torch.compile is not supported with torch {torch.__version__} on Python "
                           f"{platform.python_version()}; run without --compile")
    return torch.compile(model, backend=COMPILE_BACKEND)


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
            logits: bool = False, precision: str = "fp32") -> torch.Tensor:
    """Labels (N,) int64 (or logits (N, K) float32) of ``model`` on images (N, C, H, W) in [0,1], computed
    under autocast to ``precision`` (fp32: none)."""
    device = device or next(model.parameters()).device
    outs = []
    for sl in batches(len(images), batch_size):
        with autocast(device, precision):
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
