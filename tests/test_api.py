"""The Python API as a user meets it: keyword names that match the CLI, no changes to the caller's global state,
and the examples in the package docstring."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

import robench
from robench.attacks import perturb


def rng_states() -> tuple:
    return torch.get_rng_state(), np.random.get_state(), random.getstate()


def same_states(a: tuple, b: tuple) -> bool:
    (ta, na, pa), (tb, nb, pb) = a, b
    return (torch.equal(ta, tb) and na[0] == nb[0] and np.array_equal(na[1], nb[1]) and na[2:] == nb[2:]
            and pa == pb)


def test_attack_and_train_leave_the_callers_rng_alone(trained_ws, ws):
    """ART draws from numpy's global RNG and Foolbox (and the noise method) from torch's: both are seeded inside
    the call and restored after, so a notebook's random state is the same before and after."""
    import sklearn.datasets  # noqa: F401  (its first import draws from python's `random`: not robench's doing)

    torch.manual_seed(123)
    np.random.seed(123)
    before = rng_states()
    source = str(Path(trained_ws) / "models" / "tiny")
    robench.attack(source, "pgd", backend="art", random_start=True, steps=2, n=8, seed=5, workspace=ws)
    robench.attack(source, "noise", n=8, seed=5, workspace=ws)
    robench.attack(source, "pgd", random_start=True, steps=2, n=8, seed=5, workspace=ws, name="fb")  # foolbox
    model = robench.load_model(source)
    images = torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    perturb(model, images, torch.zeros(4, dtype=torch.int64), "pgd", "art", seed=1, random_start=True, steps=1)
    robench.train("tiny", dataset="digits", preset="quick", epochs=1, width=4, workspace=ws, device="cpu")
    assert same_states(before, rng_states())
    assert not same_states(before, (torch.rand(1) and torch.get_rng_state(), np.random.get_state(),
                                    random.getstate()))  # the comparison can see a change


def test_train_takes_preset_like_the_cli():
    import inspect

    from robench.cli.train import train as train_cmd

    api = set(inspect.signature(robench.train).parameters)
    cli = set(inspect.signature(train_cmd).parameters)
    assert "preset" in api and not cli - api - {"verbose", "seeds"}, cli - api
    assert "seeds" in inspect.signature(robench.train_seeds).parameters  # --seeds is train_seeds' keyword
    with pytest.raises(TypeError):
        robench.train("tiny", preset_name="quick")
