"""The built-in demo study (``robench demo``): a suite written in code."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from robench.suites.plan import plan
from robench.suites.schema import Suite, suite_from_dict

DEMO_SOURCE = "resnet18-seed1"


def demo_suite(workspace: str | os.PathLike | None = None, epochs: int = 10, n: int = 5000) -> Suite:
    """The offline demo study on digits: a standard source; standard, bottom-0.1 and top-0.1 targets
    (ResNet-18, width 16); FGSM(8/255) and PGD(1/255, 20, 16/255) sets from the source; the matrix; the HTML report."""
    raw = {
        "study": {"name": "demo", "dataset": "digits"},
        "train": {"preset": "quick", "width": 16, "epochs": epochs},
        "models": [
            {"arch": "resnet18", "seed": 1},  # the source: another initialisation than the targets
            {"arch": "resnet18", "keep": 1.0},
            {"arch": "resnet18", "keep": 0.1, "placement": ["bottom", "top"]},
        ],
        "attack": {"n": n, "source": DEMO_SOURCE},
        "attacks": [{"method": "fgsm", "eps": "8/255"}, {"method": "pgd", "eps": "16/255", "step": "1/255",
                                                          "steps": 20}],
        "matrix": {"out": "demo-matrix.csv"},
        "report": {"out": "demo-report.html"},
    }
    return suite_from_dict(raw, workspace=workspace or "robench-demo", source="robench demo")


def demo_plots(suite: Suite, df: pd.DataFrame, fmt: str = "png") -> list[Path]:
    """The demo's figures: the matrix heatmap and clean-vs-adversarial example grids of each set."""
    from robench.reports import plots
    from robench.scoring import set_examples

    results = suite.workspace / "results"
    paths = [plots.heatmap(df, results / f"demo-matrix.{fmt}")]
    for step in plan(suite):
        if step.kind == "attack":
            paths.append(set_examples(step.name, results / f"{step.name}-examples.{fmt}", workspace=suite.workspace))
    return paths
