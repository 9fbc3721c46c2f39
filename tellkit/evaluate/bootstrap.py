"""Confidence intervals for evaluation scores.

Two kinds of uncertainty matter when comparing fine-tuning methods on tiny
task sets:

* *Item sampling*: a score on 200 test items would move if we had drawn a
  different 200. ``bootstrap_ci`` (item-level averages) and
  ``bootstrap_corpus_ci`` (corpus-level metrics such as chrF/BLEU, which are
  *not* averages of item scores) resample items with replacement.
* *Training randomness*: the same method trained with different seeds lands
  at different scores. ``mean_ci_over_seeds`` and ``difference_ci`` use a
  Student-t interval across seeds, because there are only a handful of seeds
  and a bootstrap over 3-5 values is meaningless.

All intervals are two-sided with coverage ``1 - alpha``. When an interval
cannot be estimated (too few values) the bounds are NaN rather than a
zero-width interval, so a single run never looks falsely certain.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

from tellkit.errors import ConfigError

NAN = float("nan")


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ConfigError(
            f"alpha={alpha!r} is invalid: use a value strictly between 0 and 1 (0.05 gives a 95% interval)"
        )


def _check_resamples(n_resamples: int) -> None:
    if n_resamples < 1:
        raise ConfigError(
            f"n_resamples={n_resamples!r} is invalid: use a positive number of bootstrap resamples (e.g. 1000)"
        )


def _percentile_bounds(resampled: np.ndarray, alpha: float) -> tuple[float, float]:
    low, high = np.quantile(resampled, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    statistic: Callable[[np.ndarray], float] = np.mean,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float, float]:
    """Percentile bootstrap over items: returns ``(point, low, high)``.

    ``point`` is ``statistic(values)`` on the full sample. With no items all
    three are NaN; with one item the point is defined but the bounds are NaN
    (every resample is the same item, so the spread says nothing).
    """
    _check_alpha(alpha)
    _check_resamples(n_resamples)
    arr = np.asarray(values, dtype=float)
    n = arr.size
    if n == 0:
        return NAN, NAN, NAN
    point = float(statistic(arr))
    if n == 1:
        return point, NAN, NAN
    rng = np.random.default_rng(seed)
    # One resample per row; drawn row by row so memory stays O(n) for large n.
    resampled = np.array([statistic(arr[rng.integers(0, n, size=n)]) for _ in range(n_resamples)], dtype=float)
    return (point, *_percentile_bounds(resampled, alpha))


def bootstrap_corpus_ci(
    n_items: int,
    corpus_fn: Callable[[np.ndarray], float],
    n_resamples: int = 200,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float, float]:
    """Percentile bootstrap for a corpus-level score: returns ``(point, low, high)``.

    ``corpus_fn(indices)`` must score the corpus made of the items at
    ``indices`` (an integer array, possibly with repeats). The point estimate
    is ``corpus_fn(arange(n_items))``. Same n=0 / n=1 conventions as
    :func:`bootstrap_ci`. The default of 200 resamples is lower than for
    item averages because each resample recomputes the whole corpus score.
    """
    _check_alpha(alpha)
    _check_resamples(n_resamples)
    if n_items == 0:
        return NAN, NAN, NAN
    point = float(corpus_fn(np.arange(n_items)))
    if n_items == 1:
        return point, NAN, NAN
    rng = np.random.default_rng(seed)
    resampled = np.array(
        [corpus_fn(rng.integers(0, n_items, size=n_items)) for _ in range(n_resamples)], dtype=float
    )
    return (point, *_percentile_bounds(resampled, alpha))


def mean_ci_over_seeds(values: Sequence[float], alpha: float = 0.05) -> dict[str, float]:
    """Mean of per-seed scores with a Student-t interval.

    Returns ``{"mean", "ci_low", "ci_high", "n"}``; bounds are NaN for fewer
    than two seeds.
    """
    _check_alpha(alpha)
    arr = np.asarray(values, dtype=float)
    n = arr.size
    if n == 0:
        return {"mean": NAN, "ci_low": NAN, "ci_high": NAN, "n": 0}
    mean = float(arr.mean())
    if n == 1:
        return {"mean": mean, "ci_low": NAN, "ci_high": NAN, "n": 1}
    half = float(stats.t.ppf(1.0 - alpha / 2.0, df=n - 1)) * float(arr.std(ddof=1)) / math.sqrt(n)
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "n": n}


def difference_ci(
    a: Sequence[float],
    b: Sequence[float],
    alpha: float = 0.05,
    higher_is_better: bool = True,
) -> dict[str, float | str]:
    """Compare method A with method B across seeds (Welch's t interval on mean(a) - mean(b)).

    ``verdict`` is "A better" / "B better" only when the interval excludes 0,
    otherwise "no clear difference" (also when either side has fewer than two
    seeds, since no variance can be estimated). Pass
    ``higher_is_better=False`` for error-like metrics such as TER.

    Welch (unequal variances) rather than a pooled t-test because a method
    that is unstable across seeds should widen the interval, not be averaged
    away by a stable competitor.
    """
    _check_alpha(alpha)
    xa = np.asarray(a, dtype=float)
    xb = np.asarray(b, dtype=float)
    na, nb = xa.size, xb.size
    diff = float(xa.mean() - xb.mean()) if na and nb else NAN
    low = high = NAN
    if na >= 2 and nb >= 2:
        va, vb = xa.var(ddof=1) / na, xb.var(ddof=1) / nb
        se = math.sqrt(va + vb)
        if se == 0.0:
            # Every seed gave the same score on both sides: the difference is exact.
            low = high = diff
        else:
            df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
            half = float(stats.t.ppf(1.0 - alpha / 2.0, df=df)) * se
            low, high = diff - half, diff + half
    if not (math.isnan(low) or low <= 0.0 <= high):
        a_ahead = low > 0.0 if higher_is_better else high < 0.0
        verdict = "A better" if a_ahead else "B better"
    else:
        verdict = "no clear difference"
    return {"mean_diff": diff, "ci_low": low, "ci_high": high, "verdict": verdict, "n_a": na, "n_b": nb}
