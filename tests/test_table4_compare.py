"""benchmarks/table4_compare.py: our matrix CSV set beside the papers' Table 4."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import table4_compare as t4  # noqa: E402


def matrix_csv(path: Path, values: dict) -> Path:
    """A robench-style tidy matrix CSV whose defense rates are ``values`` (in %), plus rows the comparison ignores."""
    rows = [
        {"target": f"{arch}-k{keep}", "source": f"{src}-seed1", "target_arch": arch, "target_keep": keep,
         "defense_rate": vals[i] / 100, "target_clean_accuracy": vals[-1] / 100, "relation": "black-box", "n": 100,
         "method": "pgd", "eps": 16 / 255}
        for (arch, keep), vals in values.items() for i, src in enumerate(t4.ARCHS)
    ]
    rows.append({**rows[0], "target_keep": 0.1, "defense_rate": 0.99})       # a keep the table does not have
    rows.append({**rows[0], "source": "ensemble-4", "defense_rate": 0.01})  # a source the table does not have
    rows.append({**rows[0], "eps": 32 / 255, "defense_rate": 0.02})         # another budget
    rows.append({**rows[0], "method": "fgsm", "defense_rate": 0.03})        # another attack
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_paper_values_compare_equal_and_increase_with_lower_keep(tmp_path: Path) -> None:
    ours = t4.ours_frame(matrix_csv(tmp_path / "m.csv", t4.PAPER))
    assert len(ours) == 75
    table = t4.side_by_side(ours, t4.paper_frame())
    from robench.stats import proportion_ci

    (a, b), (c, d) = proportion_ci(54, 100), proportion_ci(33, 100)  # 53.89% and 33.05% of n = 100
    assert (f"| resnet18 | 0.5 | 53.9 [{100 * a:.1f}, {100 * b:.1f}] / 53.9 in | 33.0 [{100 * c:.1f}, {100 * d:.1f}] / "
            f"33.0 in |") in table
    assert t4.inside(ours, t4.paper_frame()) == (75, 75)
    assert t4.monotone(ours) == (25, 25)
    assert t4.means(ours).tolist() == pytest.approx([15.70, 51.84, 72.79], abs=0.01)  # by hand from the table


def test_paper_value_outside_our_interval_is_marked(tmp_path: Path) -> None:
    """The interval is the CSV's when it has one, else Wilson's from (rate, n); a paper value outside it reads out."""
    from robench.stats import proportion_ci

    values = dict(t4.PAPER)
    values[("resnet18", 1.0)] = [20.0, *values[("resnet18", 1.0)][1:]]  # ours 20 of 100, paper 5.98
    ours = t4.ours_frame(matrix_csv(tmp_path / "m.csv", values))
    low, high = proportion_ci(20, 100)
    cell = ours[(ours.target_arch == "resnet18") & (ours.target_keep == 1.0) & (ours.source_arch == "resnet18")]
    assert (cell.low.iloc[0], cell.high.iloc[0]) == pytest.approx((100 * low, 100 * high))
    assert f"20.0 [{100 * low:.1f}, {100 * high:.1f}] / 6.0 out" in t4.side_by_side(ours, t4.paper_frame())
    assert t4.inside(ours, t4.paper_frame()) == (74, 75)
    df = pd.read_csv(tmp_path / "m.csv").assign(ci_low=0.995, ci_high=1.0)  # recorded intervals are used as given
    df.to_csv(tmp_path / "ci.csv", index=False)
    assert t4.inside(t4.ours_frame(tmp_path / "ci.csv"), t4.paper_frame()) == (0, 75)


def test_a_cell_that_falls_with_lower_keep_is_counted(tmp_path: Path) -> None:
    values = dict(t4.PAPER)
    values[("vgg19", 0.3)] = [10.0, *values[("vgg19", 0.3)][1:]]  # vgg19 target, resnet18 source: 72.3 -> 10
    assert t4.monotone(t4.ours_frame(matrix_csv(tmp_path / "m.csv", values))) == (24, 25)


def test_table4_estimate_scales_median_epochs_to_the_full_preset(trained_ws):
    """benchmarks/table4_estimate.py: per model, median epoch time (first epoch left out) x the preset's epochs."""
    import table4_estimate as est

    from robench import store
    from robench.training import preset

    records = store.list_model_records(trained_ws)  # quick preset, 4 epochs each
    expected = sum(statistics.median([h.seconds for h in r.history][1:]) * preset("quick", "digits").epochs
                   for r in records)
    e = est.estimate(trained_ws, matrix_s=36.0)
    assert e["preset"] == "quick" and e["models"] == 2 and e["attack_h"] == 0
    assert e["train_h"] == pytest.approx(expected / 3600) and e["total_h"] == pytest.approx((expected + 36) / 3600)
