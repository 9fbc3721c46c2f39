"""Scores over seeds and differences between methods, from the metric results of each seed.

``over_seeds("json/strict", results)`` and ``difference("json/strict", results_a, results_b)``
take one metric-results mapping per seed (``scores.json["metrics"]``) and choose the interval
from what the results hold (see ``metrics.bootstrap``): the per-item rows of every seed give a
bootstrap over test items and seeds (paired by item for differences), with the metric's own
statistic, so F1 or corpus chrF are recomputed on each resample; results without rows fall back
to Wilson for a bounded score and Student-t / Welch over seeds otherwise. Each answer names its
interval in ``"interval"``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from tellkit.metrics import METRICS, bootstrap, general, general_ood
from tellkit.metrics.base import Statistic, item_mean

Results = Sequence[Mapping[str, Any]]  # one {metric: result} per seed


def split(key: str) -> tuple[str, str]:
    metric, _, name = key.partition("/")
    return metric, name


def higher_is_better(key: str, result: Mapping[str, Any] | None = None) -> bool:
    """Whether a larger `key` is better; general_ood's direction is its lm-eval task's, read from `result`
    (one seed's general_ood result) or, without one, assumed higher."""
    metric, name = split(key)
    if metric == general.NAME:
        return general.HIGHER_IS_BETTER
    if metric == general_ood.NAME:
        return general_ood.higher_is_better(name, result)
    return METRICS[metric].higher_is_better if metric in METRICS else True


def bounds(key: str) -> tuple[float, float]:
    metric, name = split(key)
    if metric == general.NAME:
        return general.BOUNDS.get(name, (-math.inf, math.inf))
    return METRICS[metric].bounds if metric in METRICS else (-math.inf, math.inf)


def statistic(key: str, result: Mapping[str, Any]) -> Statistic | None:
    """The function of item rows giving the score; None for a plain item mean (vectorised)."""
    metric, name = split(key)
    if metric == general.NAME:
        fn = general.statistic(name, result)
    elif metric == general_ood.NAME:
        fn = general_ood.statistic(name, result)
    else:
        fn = METRICS[metric].statistic(name, result) if metric in METRICS else item_mean
    return None if fn is item_mean else fn


def _with(key: str, results: Results) -> list[Mapping[str, Any]]:
    """The per-seed results of ``key``'s metric, from the seeds that have the score."""
    metric, name = split(key)
    return [r[metric] for r in results if metric in r and name in r[metric].get("scores", {})]


def _values(key: str, found: list[Mapping[str, Any]]) -> list[float]:
    return [float(res["scores"][split(key)[1]]["value"]) for res in found]


def _items(key: str, found: list[Mapping[str, Any]]) -> list | None:
    rows = [res.get("items", {}).get(split(key)[1]) for res in found]
    return rows if rows and all(r is not None and len(r) for r in rows) else None


def items(key: str, results: Results) -> list | None:
    """Each seed's per-item rows of ``key`` (None where a seed lacks the score or its rows)."""
    found = _with(key, results)
    return _items(key, found) if len(found) == len(results) else None


def over_seeds(key: str, results: Results, alpha: float = 0.05) -> dict[str, Any]:
    """``{"mean", "ci_low", "ci_high", "n", "interval"}`` of ``key`` ("metric/score") over seeds."""
    found = _with(key, results)
    items = _items(key, found)
    n_items = min((int(res.get("n") or 0) for res in found), default=0)
    return bootstrap.mean_ci_over_seeds(_values(key, found), alpha, items=items,
                                        statistic=statistic(key, found[0]) if found else None,
                                        bounds=bounds(key), n_items=n_items)


def difference(key: str, results_a: Results, results_b: Results, alpha: float = 0.05) -> dict[str, Any]:
    """score(A) - score(B) with an interval and a verdict ("A better" / "B better" / "no clear difference")."""
    found_a, found_b = _with(key, results_a), _with(key, results_b)
    return bootstrap.difference_ci(_values(key, found_a), _values(key, found_b), alpha,
                                   higher_is_better=higher_is_better(key, (found_a or found_b or [None])[0]),
                                   items_a=_items(key, found_a), items_b=_items(key, found_b),
                                   statistic=statistic(key, found_a[0]) if found_a else None)
