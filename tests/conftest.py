"""Shared fixtures: a small workspace trained once per test session on the offline digits data, and the same
real digits written out as PNG folder trees (the kind of input users bring)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import robench

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def trained_ws(tmp_path_factory) -> str:
    """A workspace with a standard tiny CNN ('tiny') and a defective one ('tiny-keep0.3-bottom'),
    both trained for a few epochs on digits; tests must not modify it."""
    ws = tmp_path_factory.mktemp("ws")
    for keep in (1.0, 0.3):
        robench.train("tiny", dataset="digits", workspace=ws, preset="quick", epochs=4, keep=keep, device="cpu")
    return str(ws)


@pytest.fixture
def ws(tmp_path) -> str:
    return str(tmp_path / "ws")


def write_digits_tree(root: Path, mode: str = "L", size: int = 32, per_class: int | None = None,
                      test_fraction: float = 0.2) -> Path:
    """scikit-learn's real handwritten digits as ROOT/{train,test}/<digit>/<i>.png (mode 'L' or 'RGB').

    The 8x8 digits are upscaled to ``size`` px (bilinear); RGB trees tint each digit's strokes so the three
    channels differ. ``per_class`` caps the images per class. Returns ``root``.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    rng = np.random.default_rng(0)
    counts: dict[int, int] = {}
    for i, (img, label) in enumerate(zip(bunch.images, bunch.target, strict=True)):
        if per_class is not None and counts.get(int(label), 0) >= per_class:
            continue
        counts[int(label)] = counts.get(int(label), 0) + 1
        gray = Image.fromarray((img * 255 / 16).astype(np.uint8), "L").resize((size, size), Image.BILINEAR)
        if mode == "RGB":
            a = np.asarray(gray, dtype=np.float32) / 255
            tint = np.array([1.0, 0.5 + 0.05 * label, 0.3 + 0.07 * label], dtype=np.float32)
            gray = Image.fromarray((a[..., None] * tint * 255).astype(np.uint8), "RGB")
        split = "test" if rng.random() < test_fraction else "train"
        path = root / split / str(int(label)) / f"{i:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        gray.save(path)
    return root


@pytest.fixture(scope="session")
def digits_png(tmp_path_factory) -> Path:
    """The real digits as a grayscale 32x32 PNG tree (train/ and test/, one folder per class)."""
    return write_digits_tree(tmp_path_factory.mktemp("digits-png") / "digits-png")


@pytest.fixture(scope="session")
def digits_rgb(tmp_path_factory) -> Path:
    """The real digits as a 3-channel 32x32 PNG tree."""
    return write_digits_tree(tmp_path_factory.mktemp("digits-rgb") / "digits-rgb", mode="RGB")
