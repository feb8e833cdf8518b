"""Shared fixtures: a small workspace trained once per test session on the offline digits data."""

from __future__ import annotations

import os

import pytest
import torch

import robench

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def trained_ws(tmp_path_factory) -> str:
    """A workspace with a standard tiny CNN ('tiny') and a defective one ('tiny-keep0.3-bottom'),
    both trained for a few epochs on digits; tests must not modify it."""
    ws = tmp_path_factory.mktemp("ws")
    for keep in (1.0, 0.3):
        robench.train("tiny", dataset="digits", workspace=ws, preset_name="quick", epochs=4, keep=keep, device="cpu")
    return str(ws)


@pytest.fixture
def ws(tmp_path) -> str:
    return str(tmp_path / "ws")
