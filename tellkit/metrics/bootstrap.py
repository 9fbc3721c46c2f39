"""Confidence intervals for evaluation scores.

Two kinds of uncertainty matter when comparing fine-tuning methods on tiny
task sets:

* *Item sampling*: a score on 200 test items would move if we had drawn a
  different 200. ``bootstrap_ci`` (item-level averages) and
  ``bootstrap_corpus_ci`` (corpus-level metrics such as chrF/BLEU, which are
  *not* averages of item scores) resample items with replacement.
* *Training randomness*: the same method trained with different seeds lands
  at different scores.

Across seeds, ``mean_ci_over_seeds`` and ``difference_ci`` pick the first
interval that fits the data they are given (the result names it, in
``"interval"``):

1. per-item scores of every seed on the same test items: a bootstrap that
   resamples test items *and* seeds (the two are crossed: every seed scores
   every item), ``crossed_bootstrap_ci``. It is a statistic of observed
   values, so a proportion's interval stays inside [0, 1]; with one seed it
   is the plain item bootstrap. Differences resample the *same* items for
   both methods (paired by item), which removes the item-difficulty noise
   both methods share.
2. no per-item scores but a bounded score: a Wilson interval over all
   items x seeds (``wilson_ci``) on the score rescaled to [0, 1]; it ignores
   seed-to-seed spread, so it is a floor on the uncertainty.
3. otherwise (losses, perplexity, BLEURT): a Student-t interval over seeds
   (Welch's for differences).

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


ITEMS_AND_SEEDS = "bootstrap over test items and seeds"
PAIRED_ITEMS_AND_SEEDS = "paired bootstrap over test items and seeds"
WILSON = "Wilson over items x seeds"
STUDENT_T = "Student-t over seeds"
WELCH_T = "Welch t over seeds"

Statistic = Callable[[np.ndarray], float]


def _stack_items(per_seed: Sequence[Sequence]) -> np.ndarray:
    """(seeds, items, ...) array; every seed must have scored the same number of items."""
    arrays = [np.asarray(x, dtype=float) for x in per_seed]
    if len({a.shape for a in arrays}) > 1:
        raise ValueError(f"per-seed items differ in shape: {sorted({a.shape for a in arrays})}; "
                         "every seed must be scored on the same test items")
    return np.stack(arrays)


def _same_items(stacked: list[np.ndarray]) -> list[np.ndarray]:
    """The (seeds, items, ...) arrays of cells to resample together: a paired draw needs one test set."""
    if len({g.shape[1:] for g in stacked}) > 1:
        raise ValueError(f"the cells have items of shapes {[g.shape[1:] for g in stacked]}: a paired bootstrap "
                         "needs the same test items for all")
    return stacked


def _items_usable(per_seed: Sequence[Sequence] | None) -> bool:
    if not per_seed or any(x is None for x in per_seed):
        return False
    return len({np.shape(x) for x in per_seed}) == 1


def _crossed_resamples(items: np.ndarray, statistic: Statistic | None, rng: np.random.Generator,
                       item_idx: np.ndarray) -> float:
    """The mean over a resample of seeds of ``statistic`` on the resampled items."""
    seeds = rng.integers(0, items.shape[0], size=items.shape[0])
    picked = items[seeds][:, item_idx]
    if statistic is None:  # item means: one vectorised mean over seeds x items
        return float(picked.mean())
    return float(np.mean([statistic(rows) for rows in picked]))


def _point(items: np.ndarray, statistic: Statistic | None) -> float:
    if statistic is None:
        return float(items.mean())
    return float(np.mean([statistic(rows) for rows in items]))


def crossed_bootstrap_ci(
    per_seed_items: Sequence[Sequence],
    statistic: Statistic | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float, float]:
    """Bootstrap over test items and seeds: returns ``(point, low, high)``.

    ``per_seed_items[s]`` holds seed s's per-item rows for the same test items
    in the same order. Each resample draws seeds and items with replacement,
    independently (Owen's bootstrap for crossed factors, mildly conservative),
    and averages ``statistic`` (default: the mean of the rows) over the drawn
    seeds. ``point`` is the mean over seeds of each seed's score. With one item
    the bounds are NaN, as in :func:`bootstrap_ci`.
    """
    _check_alpha(alpha)
    _check_resamples(n_resamples)
    items = _stack_items(per_seed_items)
    if items.shape[0] == 0 or items.shape[1] == 0:
        return NAN, NAN, NAN
    point = _point(items, statistic)
    n = items.shape[1]
    if n == 1:
        return point, NAN, NAN
    rng = np.random.default_rng(seed)
    resampled = np.array([_crossed_resamples(items, statistic, rng, rng.integers(0, n, size=n))
                          for _ in range(n_resamples)])
    return (point, *_percentile_bounds(resampled, alpha))


def paired_crossed_bootstrap_ci(
    items_a: Sequence[Sequence],
    items_b: Sequence[Sequence],
    statistic: Statistic | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float, float]:
    """``(point, low, high)`` of score(A) - score(B), resampling the same test items for both.

    Seeds are resampled independently per method (seed s of A has nothing to do with seed s of B).
    """
    _check_alpha(alpha)
    _check_resamples(n_resamples)
    a, b = _same_items([_stack_items(items_a), _stack_items(items_b)])
    n = a.shape[1]
    if n == 0:
        return NAN, NAN, NAN
    point = _point(a, statistic) - _point(b, statistic)
    if n == 1:
        return point, NAN, NAN
    resampled = joint_crossed_resamples([a, b], statistic, n_resamples=n_resamples, seed=seed)
    return (point, *_percentile_bounds(resampled[:, 0] - resampled[:, 1], alpha))


def joint_crossed_resamples(
    groups: Sequence[Sequence[Sequence]],
    statistic: Statistic | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> np.ndarray:
    """``(n_resamples, len(groups))`` bootstrap scores of several cells scored on the same test items.

    Each draw picks one set of items for every group (the draw is paired) and seeds independently per
    group, as :func:`crossed_bootstrap_ci` does for one. For any function of several cells' scores, e.g.
    the data-efficiency multiplier, which reads TELL's score off SFT's scale curve.
    """
    _check_resamples(n_resamples)
    stacked = _same_items([_stack_items(g) for g in groups])
    n = stacked[0].shape[1]
    rng = np.random.default_rng(seed)
    out = np.empty((n_resamples, len(stacked)))
    for i in range(n_resamples):
        idx = rng.integers(0, n, size=n)
        out[i] = [_crossed_resamples(g, statistic, rng, idx) for g in stacked]
    return out


def wilson_ci(p: float, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval for a proportion ``p`` observed over ``n`` trials; stays inside [0, 1]."""
    _check_alpha(alpha)
    if n <= 0 or math.isnan(p):
        return NAN, NAN
    z = float(stats.norm.ppf(1.0 - alpha / 2.0))
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _bounded(bounds: tuple[float, float] | None) -> bool:
    return bounds is not None and all(math.isfinite(b) for b in bounds)


def mean_ci_over_seeds(
    values: Sequence[float],
    alpha: float = 0.05,
    *,
    items: Sequence[Sequence] | None = None,
    statistic: Statistic | None = None,
    bounds: tuple[float, float] | None = None,
    n_items: int | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, float | str]:
    """Mean of per-seed scores with an interval that respects what the score can be.

    ``items``: each seed's per-item rows (see :func:`crossed_bootstrap_ci`,
    ``statistic`` turns rows into the score; default the mean). Without them,
    a score with finite ``bounds`` gets a Wilson interval over ``n_items`` x
    seeds, and anything else a Student-t interval over seeds. Returns
    ``{"mean", "ci_low", "ci_high", "n", "interval"}``; bounds are NaN when
    they cannot be estimated (one seed without items; one item).
    """
    _check_alpha(alpha)
    arr = np.asarray(values, dtype=float)
    n = arr.size
    if n == 0:
        return {"mean": NAN, "ci_low": NAN, "ci_high": NAN, "n": 0, "interval": "none"}
    mean = float(arr.mean())
    if _items_usable(items) and len(items) == n:
        _, low, high = crossed_bootstrap_ci(items, statistic, n_resamples=n_resamples, seed=seed, alpha=alpha)
        return {"mean": mean, "ci_low": low, "ci_high": high, "n": n, "interval": ITEMS_AND_SEEDS}
    if _bounded(bounds) and n_items:
        lo, hi = bounds
        low, high = wilson_ci(min(max((mean - lo) / (hi - lo), 0.0), 1.0), n_items * n, alpha)
        return {"mean": mean, "ci_low": lo + low * (hi - lo), "ci_high": lo + high * (hi - lo), "n": n,
                "interval": WILSON}
    if n == 1:
        return {"mean": mean, "ci_low": NAN, "ci_high": NAN, "n": 1, "interval": STUDENT_T}
    half = float(stats.t.ppf(1.0 - alpha / 2.0, df=n - 1)) * float(arr.std(ddof=1)) / math.sqrt(n)
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "n": n, "interval": STUDENT_T}


def _verdict(low: float, high: float, higher_is_better: bool) -> str:
    if math.isnan(low) or low <= 0.0 <= high:
        return "no clear difference"
    a_ahead = low > 0.0 if higher_is_better else high < 0.0
    return "A better" if a_ahead else "B better"


def difference_ci(
    a: Sequence[float],
    b: Sequence[float],
    alpha: float = 0.05,
    higher_is_better: bool = True,
    *,
    items_a: Sequence[Sequence] | None = None,
    items_b: Sequence[Sequence] | None = None,
    statistic: Statistic | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, float | str]:
    """Compare method A with method B: an interval on score(A) - score(B) and a verdict.

    With per-item rows for both (``items_a``/``items_b``, the same test items),
    a bootstrap over test items (shared by A and B: paired) and seeds; otherwise
    Welch's t interval on mean(a) - mean(b) across seeds. Welch (unequal
    variances) rather than a pooled t-test because a method that is unstable
    across seeds should widen the interval, not be averaged away by a stable
    competitor.

    ``verdict`` is "A better" / "B better" only when the interval excludes 0,
    otherwise "no clear difference" (also when no interval can be estimated,
    e.g. one seed each and no per-item scores). Pass ``higher_is_better=False``
    for error-like metrics such as TER or a loss.
    """
    _check_alpha(alpha)
    xa = np.asarray(a, dtype=float)
    xb = np.asarray(b, dtype=float)
    na, nb = xa.size, xb.size
    diff = float(xa.mean() - xb.mean()) if na and nb else NAN
    low = high = NAN
    interval = WELCH_T
    paired = (_items_usable(items_a) and _items_usable(items_b) and len(items_a) == na and len(items_b) == nb
              and np.shape(items_a[0]) == np.shape(items_b[0]))
    if paired:
        interval = PAIRED_ITEMS_AND_SEEDS
        _, low, high = paired_crossed_bootstrap_ci(items_a, items_b, statistic, n_resamples=n_resamples,
                                                   seed=seed, alpha=alpha)
    elif na >= 2 and nb >= 2:
        va, vb = xa.var(ddof=1) / na, xb.var(ddof=1) / nb
        se = math.sqrt(va + vb)
        if se == 0.0:
            # Every seed gave the same score on both sides: the difference is exact.
            low = high = diff
        else:
            df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
            half = float(stats.t.ppf(1.0 - alpha / 2.0, df=df)) * se
            low, high = diff - half, diff + half
    return {"mean_diff": diff, "ci_low": low, "ci_high": high, "verdict": _verdict(low, high, higher_is_better),
            "n_a": na, "n_b": nb, "interval": interval}
