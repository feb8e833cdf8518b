"""Uncertainty of robench's numbers: intervals on rates, intervals across seeds, paired comparisons.

Every statistic comes from scipy, statsmodels or a seeded numpy generator; this module only chooses them and names
their settings.

- :func:`proportion_ci`: an interval on a rate k/n of independent per-image outcomes. ``wilson`` is the Wilson
  score interval (statsmodels ``proportion_confint(method="wilson")``); ``bootstrap`` the percentile bootstrap
  of the mean of the n outcomes (``BOOTSTRAP_RESAMPLES`` resamples from a seeded numpy generator; a resample's
  mean is drawn as Binomial(n, k/n) / n, which is its exact distribution).
- :func:`mean_ci`: Student's t interval on the mean of replicate values (e.g. a cell's defense rate over
  training seeds), ``mean +- t_{(1+level)/2, r-1} * s / sqrt(r)`` (scipy ``stats.t.interval``).
- :func:`mcnemar`: McNemar's exact test on paired outcomes (statsmodels ``mcnemar(exact=True)``, a two-sided
  binomial test on the discordant pairs), with the difference of the two rates and its Agresti-Min interval.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from robench.errors import RobenchError

CI_METHODS = ("wilson", "bootstrap", "none")
CI_LEVEL = 0.95
BOOTSTRAP_RESAMPLES = 9999


def check_ci(method: str, level: float) -> None:
    """A one-line error for an unknown interval method or a level outside (0, 1)."""
    if method not in CI_METHODS:
        raise RobenchError(f"unknown interval method '{method}': choose one of {', '.join(CI_METHODS)}")
    if not 0.0 < float(level) < 1.0:
        raise RobenchError(f"--ci-level must lie between 0 and 1 (e.g. 0.95), got {level}")


def proportion_ci(successes: int, n: int, level: float = CI_LEVEL, method: str = "wilson",
                  seed: int = 0) -> tuple[float, float]:
    """The ``level`` interval of the rate ``successes / n``; (NaN, NaN) when n == 0 or method is 'none'."""
    check_ci(method, level)
    k, n = int(successes), int(n)
    if not 0 <= k <= n:
        raise RobenchError(f"a rate needs 0 <= successes <= n, got {k} of {n}")
    if n == 0 or method == "none":
        return math.nan, math.nan
    if method == "wilson":
        from statsmodels.stats.proportion import proportion_confint

        low, high = proportion_confint(k, n, alpha=1 - level, method="wilson")
        # at 0/n and n/n the bound is exactly 0 or 1 (the formula leaves a rounding error)
        return 0.0 if k == 0 else float(low), 1.0 if k == n else float(high)
    # the mean of a resample of n outcomes with k ones is Binomial(n, k/n) / n: draw the resample means directly
    means = np.random.default_rng(seed).binomial(n, k / n, size=BOOTSTRAP_RESAMPLES) / n
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def rate_ci(rate: float, n: int, level: float = CI_LEVEL, method: str = "wilson") -> tuple[float, float]:
    """:func:`proportion_ci` of a rate given as a fraction of n (successes = round(rate * n))."""
    if n is None or not math.isfinite(float(n)) or int(n) == 0 or rate is None or not math.isfinite(float(rate)):
        return math.nan, math.nan
    return proportion_ci(round(float(rate) * int(n)), int(n), level, method)


def mean_ci(values: Any, level: float = CI_LEVEL) -> tuple[float, float]:
    """Student's t interval on the mean of replicate values (NaNs left out); (NaN, NaN) with fewer than two."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return math.nan, math.nan
    sem = float(np.std(x, ddof=1)) / math.sqrt(len(x))
    if sem == 0.0:
        return float(x.mean()), float(x.mean())
    low, high = stats.t.interval(level, len(x) - 1, loc=float(x.mean()), scale=sem)
    return float(low), float(high)


def add_rate_ci(df: Any, rate: str, prefix: str = "", method: str = "wilson", level: float = CI_LEVEL,
                n: str = "n") -> Any:
    """``df`` with columns ``{prefix}ci_low`` / ``{prefix}ci_high``: the interval of column ``rate`` over column
    ``n`` in each row (NaN where n == 0 or the rate is NaN)."""
    check_ci(method, level)
    bounds = [rate_ci(r, k, level, method) if method != "none" else (math.nan, math.nan)
              for r, k in zip(df[rate], df[n], strict=True)]
    df[f"{prefix}ci_low"] = [b[0] for b in bounds]
    df[f"{prefix}ci_high"] = [b[1] for b in bounds]
    return df


@dataclass(frozen=True)
class PairedTest:
    """McNemar's exact test of two classifiers on the same n images (outcome: defended or not).

    ``both``, ``only_a``, ``only_b``, ``neither`` are the 2x2 table's counts; ``rate_a``/``rate_b`` the two
    rates; ``difference`` = rate_a - rate_b = (only_a - only_b) / n with its Agresti-Min interval
    (``ci_low``, ``ci_high`` at ``ci_level``); ``p_value`` the two-sided exact McNemar p-value
    (binomial test of only_a against Binomial(only_a + only_b, 1/2); 1 when there is no discordant pair).
    """

    n: int
    both: int
    only_a: int
    only_b: int
    neither: int
    rate_a: float
    rate_b: float
    difference: float
    ci_low: float
    ci_high: float
    ci_level: float
    p_value: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def mcnemar(a: Any, b: Any, level: float = CI_LEVEL) -> PairedTest:
    """McNemar's exact test on paired boolean outcomes ``a`` and ``b`` (same images, same order)."""
    from scipy import stats
    from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

    check_ci("wilson", level)
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise RobenchError(f"paired outcomes must be two 1-d arrays of one length, got {a.shape} and {b.shape}")
    n = len(a)
    if n == 0:
        raise RobenchError("no paired images to compare (n = 0)")
    both, only_a, only_b = int((a & b).sum()), int((a & ~b).sum()), int((~a & b).sum())
    neither = n - both - only_a - only_b
    if only_a + only_b == 0:
        p = 1.0
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p = float(sm_mcnemar([[both, only_a], [only_b, neither]], exact=True).pvalue)
    # Agresti & Min (2005): Wald interval of the paired difference after adding 1/2 to each of the four cells
    m = n + 2.0
    p12, p21 = (only_a + 0.5) / m, (only_b + 0.5) / m
    diff = p12 - p21
    se = math.sqrt(max(p12 + p21 - diff ** 2, 0.0) / m)
    z = float(stats.norm.ppf(0.5 + level / 2))
    return PairedTest(n, both, only_a, only_b, neither, (both + only_a) / n, (both + only_b) / n,
                      (only_a - only_b) / n, max(-1.0, diff - z * se), min(1.0, diff + z * se), level, min(p, 1.0))
