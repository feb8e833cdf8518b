"""Recorded outputs of every registered attack (method x backend, plus L2, targeted and random-start variants) on a
tiny seeded CNN and a few real digits, on the CPU: the guard that a change to the attack layer's plumbing changes
no attack's result.

The fingerprints in ``tests/data/attack-outputs.json`` were written by ``python tests/attack_golden.py --write``
with the code of the time (they were first recorded before the single ``Attack`` contract replaced the four
builder contracts). A fingerprint is the sha256 of the adversarial images' float32 bytes and of each extra's
bytes; a case that ends in an error records its type and message. Exact bytes depend on the CPU's floating-point
kernels, so the file also records the fingerprints of the clean logits and of the input gradient (``platform``,
added after the first recording): where they differ, the platform differs and the comparison is skipped, not
failed (``test_attack_contract.py``).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch
from torch import nn

GOLDEN = Path(__file__).parent / "data" / "attack-outputs.json"
N = 8  # images attacked per case

# small settings per method so every case runs in well under a second
SMALL = {"pgd": {"steps": 5}, "mifgsm": {"steps": 5}, "cw": {"steps": 10, "binary_search_steps": 2},
         "boundary": {"steps": 200, "init_directions": 20, "settle": 50}, "difgsm": {"steps": 5},
         "tifgsm": {"steps": 5}, "mdti": {"steps": 5, "diversity": 0.9}, "vmifgsm": {"steps": 3, "samples": 2},
         "apgd": {"steps": 5}, "autoattack": {"steps": 2, "queries": 20}, "square": {"queries": 50},
         "hopskipjump": {"queries": 200, "init_directions": 10, "eps": 5.0}}


def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's digits as (N, 3, 16, 16) float32 in [0, 1] (upscaled, each channel tinted) and labels (N,)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32)[:, None] / 16
    x = nn.functional.interpolate(x, size=(16, 16), mode="nearest")
    x = torch.cat([x, 0.7 * x, 0.4 * x + 0.1 * x.flip(-1)], 1).clamp(0, 1)
    return x.contiguous(), torch.tensor(bunch.target, dtype=torch.int64)


def tiny_model() -> nn.Module:
    """A small CNN trained for 150 seeded SGD steps on the digits (about 90% right on the attacked ones)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(64, 10))
    x, y = digits()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    for _ in range(150):
        idx = torch.randint(100, len(x), (64,), generator=gen)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    return model.eval()


def cases() -> list[tuple[str, str, str, dict]]:
    """(case id, method, backend, keywords of ``perturb_output``) for every registered method x backend, plus
    ``--norm`` variants, a targeted run where the method takes targets, and PGD with a random start."""
    from robench.attacks import list_methods, method_spec

    out = []
    for method in list_methods():
        spec = method_spec(method)
        for backend in spec.backends:
            base = dict(SMALL.get(method, {}))
            out.append((f"{method}-{backend}", method, backend, base))
            for norm in spec.supported_norms[1:]:
                linf = {k: v for k, v in base.items() if not (k == "eps" and norm == "linf")}  # an L2 eps is > 1
                out.append((f"{method}-{backend}-{norm}", method, backend, {**linf, "norm": norm}))
            if spec.targeted:
                out.append((f"{method}-{backend}-targeted", method, backend, {**base, "targeted": True}))
            if "random_start" in spec.defaults:
                out.append((f"{method}-{backend}-rs", method, backend, {**base, "random_start": True}))
    return out


def sha(t: torch.Tensor) -> str:
    t = t.detach().cpu().contiguous()
    return f"{t.dtype}:{tuple(t.shape)}:" + hashlib.sha256(t.numpy().tobytes()).hexdigest()[:20]


def fingerprint(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, method: str, backend: str,
                kwargs: dict) -> dict:
    """The case's result: the adversarial images' and each extra's fingerprint, or the error (type and message)."""
    from robench.attacks import perturb_output

    kwargs = dict(kwargs)
    targets = (labels + 1) % 10 if kwargs.pop("targeted", False) else None
    try:
        out = perturb_output(model, images, labels, method, backend, seed=0, targets=targets, **kwargs)
    except Exception as e:  # noqa: BLE001  (a library's own error is today's behaviour too, recorded as such)
        return {"error": f"{type(e).__name__}: {e}"}
    extras = out.extra if isinstance(out.extra, dict) else out.extra.as_dict()
    return {"adv": sha(out.adv), **{k: sha(v) for k, v in sorted(extras.items())}}


def platform(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> str:
    """This CPU's floating point as the attacks see it: the clean logits' and the input gradient's fingerprints."""
    x = images.clone().requires_grad_(True)
    logits = model(x)
    (grad,) = torch.autograd.grad(nn.functional.cross_entropy(logits, labels), x)
    return f"{sha(logits)} {sha(grad)}"


def record() -> dict:
    torch.set_num_threads(1)
    model = tiny_model()
    x, y = digits()
    images, labels = x[:N], y[:N]
    with torch.no_grad():
        correct = int((model(images).argmax(1) == labels).sum())
    results = {cid: fingerprint(model, images, labels, m, b, kw) for cid, m, b, kw in cases()}
    return {"platform": platform(model, images, labels), "correct": correct, "cases": results}


if __name__ == "__main__":
    data = record()
    text = json.dumps(data, indent=1, sort_keys=True) + "\n"
    if "--write" in sys.argv:
        GOLDEN.write_text(text)
    sys.stdout.write(text)
