"""Shared pieces of the metric registry: the ``Metric`` record and result helpers.

Every metric returns ``{"n": int, "scores": {name: Score}, "items": {name: rows},
...extra}`` where a ``Score`` is ``{"value", "ci_low", "ci_high"}``: a number
without its interval invites over-reading differences on small test sets, so
there is no way to report one.

``items[name]`` holds one row per test item, in test order, from which
``Metric.statistic(name, result)`` recomputes the score on any subset of the
items (for an item mean, the row is the item's value and the statistic the
mean). That lets a comparison bootstrap over test items pooled across seeds,
paired between methods, for every score, including ratio scores such as F1
and corpus scores such as chrF.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tellkit.errors import ConfigError
from tellkit.metrics.bootstrap import bootstrap_ci, bootstrap_corpus_ci

# Item-level scores are cheap to resample; corpus scores re-score the corpus each time.
ITEM_RESAMPLES = 1000

MetricFn = Callable[[Sequence[str], Sequence[str], Mapping[str, Any], int], dict[str, Any]]
Statistic = Callable[[np.ndarray], float]


def item_mean(rows: np.ndarray) -> float:
    return float(np.mean(rows))


def _means_only(score: str, result: Mapping[str, Any]) -> Statistic:
    return item_mean


@dataclass(frozen=True)
class Metric:
    """A named metric: ``fn(predictions, references, options, seed) -> result``.

    ``options`` lists the option keys the metric reads, so the registry can
    reject misspelt keys instead of silently using defaults.
    """

    name: str
    fn: MetricFn
    description: str
    options: frozenset[str] = frozenset()
    higher_is_better: bool = True
    # What every score of this metric can be; a finite range gets a bounded interval when no
    # per-item rows are at hand (e.g. results written before items were recorded).
    bounds: tuple[float, float] = (0.0, 1.0)
    # statistic(score, result) -> the function of item rows that gives the score.
    statistic: Callable[[str, Mapping[str, Any]], Statistic] = _means_only


def score(point: float, low: float, high: float) -> dict[str, float]:
    return {"value": float(point), "ci_low": float(low), "ci_high": float(high)}


def mean_score(values: Sequence[float] | np.ndarray, seed: int) -> dict[str, float]:
    """Mean of per-item values with a percentile-bootstrap 95% CI."""
    return score(*bootstrap_ci(values, n_resamples=ITEM_RESAMPLES, seed=seed))


def item_rows(values: Sequence | np.ndarray) -> list:
    """Per-item rows as plain JSON lists (booleans as 0/1 so scores.json stays small)."""
    arr = np.asarray(values)
    return (arr.astype(int) if arr.dtype == bool else arr).tolist()


def indexed_score(n_items: int, fn: Callable[[np.ndarray], float], seed: int) -> dict[str, float]:
    """A score that is not an item mean (e.g. F1), bootstrapped over item indices."""
    return score(*bootstrap_corpus_ci(n_items, fn, n_resamples=ITEM_RESAMPLES, seed=seed))


def is_positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def option(
    options: Mapping[str, Any],
    key: str,
    default: Any,
    check: Callable[[Any], bool],
    expected: str,
) -> Any:
    """Read ``options[key]`` (or ``default``) and reject values failing ``check``."""
    value = options.get(key, default)
    if not check(value):
        raise ConfigError(f"options.{key} must be {expected}, got {value!r}")
    return value
