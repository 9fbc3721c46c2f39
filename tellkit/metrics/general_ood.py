"""The ``general_ood`` result: general ability out of distribution, from lm-evaluation-harness's per-item output.

``evaluate.harness`` runs lm-eval in-process on the evaluated model; this module turns its output
(``log_samples=True``) into a result shaped like every other metric's::

    {"n": items of the general score's task,
     "scores": {"TASK/METRIC": {"value", "ci_low", "ci_high"}},      # e.g. tellkit_wordnet/acc
     "items": {"TASK/METRIC": [one row per lm-eval document, in document order]},
     "higher_is_better": {"TASK/METRIC": bool},                      # lm-eval's own task definition
     "aggregation": {"TASK/METRIC": lm-eval aggregation name},       # mean, bits_per_byte, ...
     "n_items": {"TASK/METRIC": int}, "general_score": "TASK/METRIC", "tasks": [...], "lm_eval": version}

A row is what lm-eval's metric returns for the document: 0/1 for ``acc``, ``[loglikelihood, bytes]``
for ``bits_per_byte``. The score of any subset of rows is lm-eval's own aggregation over them, so
the bootstrap (over items, and over items x seeds, paired between methods, see
``evaluate.bootstrap``) recomputes exactly the number lm-eval reports. A metric whose rows are not
numbers (e.g. BLEU's (reference, prediction) pairs) keeps lm-eval's value without item rows.

A named group (e.g. ``mmlu``) is one score per metric over the documents of all its tasks (the
item mean over every document: lm-eval's size-weighted group mean).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tellkit.metrics.base import ITEM_RESAMPLES, Statistic, item_mean, score
from tellkit.metrics.bootstrap import bootstrap_corpus_ci

NAME = "general_ood"
# Scores that are rates in [0, 1] (reports give their changes in points).
RATES = ("acc", "acc_norm", "exact_match", "mc2", "f1")
# The metric a task's headline score takes, in this order (eval.general_score overrides it for the budget):
# lm-eval's plain log-likelihood accuracy first (what it reports first for every multiple-choice task),
# then the tokenizer-independent text likelihood.
PREFERRED = (*RATES, "bits_per_byte", "byte_perplexity", "word_perplexity")


def measured_as_asked(result: Mapping[str, Any], tasks: Sequence[str], limit: int | None, bf16: bool) -> bool:
    """Whether a stored result was measured on these eval.general_tasks with this eval.general_limit and
    precision (a finished cell evaluated on another suite, or in another precision than base and the other
    cells now are, is measured again, not reused; results from before the precision was recorded were fp32)."""
    return result.get("suite") == list(tasks) and result.get("limit") == limit and result.get("bf16", False) == bf16


def split_score(name: str) -> tuple[str, str]:
    """'tellkit_wordnet/acc' -> ('tellkit_wordnet', 'acc')."""
    task, _, metric = name.rpartition("/")
    return task, metric


@functools.lru_cache(maxsize=None)
def _aggregation(name: str):
    from lm_eval.api.registry import get_aggregation

    return get_aggregation(name)


def statistic(score_name: str, result: Mapping[str, Any]) -> Statistic:
    """The function of item rows that gives the score: lm-eval's aggregation (a plain mean vectorised)."""
    agg = result.get("aggregation", {}).get(score_name, "mean")
    if agg == "mean":
        return item_mean
    fn = _aggregation(agg)
    return lambda rows: float(fn([tuple(r) if np.ndim(r) else float(r) for r in rows]))


def higher_is_better(score_name: str, result: Mapping[str, Any] | None) -> bool:
    return bool((result or {}).get("higher_is_better", {}).get(score_name, True))


def general_score(result: Mapping[str, Any] | None, chosen: str | None = None) -> str | None:
    """The score the forgetting budget and the trade-off plot use: `chosen` (eval.general_score) when set,
    else the one the result picked when it was measured (pick_general_score)."""
    if not result:
        return None
    if chosen:
        if chosen not in result.get("scores", {}):
            from tellkit.errors import ConfigError

            raise ConfigError(f"eval.general_score {chosen!r} is not a score of the general suite; choose one of "
                              f"{sorted(result.get('scores', {}))} and rerun (finished cells are reused)")
        return chosen
    return result.get("general_score")


def pick_general_score(scores: Sequence[str], hib: Mapping[str, bool], tasks: Sequence[str]) -> str | None:
    """The first task's headline score (task_scores): the budget's general score when none is chosen."""
    for task in tasks:
        own = [s for s in scores if split_score(s)[0] == task]
        for metric in PREFERRED:
            if f"{task}/{metric}" in own:
                return f"{task}/{metric}"
        rising = [s for s in own if hib.get(s, True)]
        if rising or own:
            return (rising or own)[0]
    return None


def _numeric(rows: list) -> list | None:
    """The rows as JSON numbers (a float, or a list of floats, per document); None when they are not numbers."""
    try:
        arr = np.asarray(rows, dtype=float)
    except (TypeError, ValueError):
        return None
    return arr.tolist() if arr.ndim in (1, 2) and len(arr) else None


def _aggregation_of(output: Mapping[str, Any], task: str, metric: str) -> str | None:
    """The name of lm-eval's aggregation of `metric` in `task`: the task config's, else the metric's default;
    None for a task's own aggregation function (its rows cannot be re-aggregated by name)."""
    from lm_eval.api.registry import AGGREGATION_REGISTRY, get_metric_aggregation

    entries = output.get("configs", {}).get(task, {}).get("metric_list") or []
    given = next((m.get("aggregation") for m in entries if m.get("metric") == metric), None)
    if isinstance(given, str) and given in AGGREGATION_REGISTRY:
        return given
    if given is not None:
        return None
    default = get_metric_aggregation(metric)
    return next((name for name, fn in AGGREGATION_REGISTRY.items() if fn is default), None)


def from_lm_eval(output: Mapping[str, Any], requested: Sequence[str], seed: int,
                 chosen: str | None = None) -> dict[str, Any]:
    """The ``general_ood`` result from ``lm_eval.simple_evaluate(..., log_samples=True)``'s output;
    `requested`: the top-level task and group names, in eval.general_tasks order."""
    samples, hib_all = output["samples"], output.get("higher_is_better", {})
    subtasks = output.get("group_subtasks", {})
    scores, items, hib, aggs, n_items = {}, {}, {}, {}, {}
    for top in requested:
        leaves = _leaves(top, subtasks, samples)
        by_key: dict[str, list] = {}  # "metric" or "metric,filter" -> rows over the leaves' documents
        for leaf in leaves:
            for s in sorted(samples[leaf], key=lambda s: int(s["doc_id"])):
                for metric in s.get("metrics", []):
                    key = metric if s.get("filter", "none") == "none" else f"{metric},{s['filter']}"
                    by_key.setdefault(key, []).append(s[metric])
        for key, rows in by_key.items():
            metric, _, filt = key.partition(",")
            name = f"{top}/{key}"
            hib[name] = bool(hib_all.get(leaves[0], {}).get(metric, True))
            aggs[name] = _aggregation_of(output, leaves[0], metric)
            n_items[name] = len(rows)
            values = _numeric(rows) if aggs[name] else None
            if values is None:  # not numbers (BLEU's string pairs), or the task's own aggregation: lm-eval's value
                value = output["results"].get(top, {}).get(f"{metric},{filt or 'none'}")
                scores[name] = score(float(value) if isinstance(value, (int, float)) else math.nan, math.nan, math.nan)
                continue
            items[name] = values
            stat, arr = statistic(name, {"aggregation": aggs}), np.asarray(values)
            scores[name] = score(*bootstrap_corpus_ci(len(values), lambda idx: stat(arr[idx]),
                                                      n_resamples=ITEM_RESAMPLES, seed=seed))
    primary = chosen if chosen in scores else pick_general_score(list(scores), hib, requested)
    return {"n": n_items.get(primary, 0), "scores": scores, "items": items, "higher_is_better": hib,
            "aggregation": aggs, "n_items": n_items, "general_score": primary, "tasks": list(requested)}


def _leaves(name: str, subtasks: Mapping[str, list[str]], samples: Mapping[str, Any]) -> list[str]:
    """The leaf tasks of a requested name: itself, or a group's tasks (recursively), in lm-eval's order."""
    if name in samples:
        return [name]
    for group, children in subtasks.items():
        if group == name or group.split(",")[0] == name:  # lm-eval may key groups as "name" or "name,alias"
            return [leaf for child in children for leaf in _leaves(child, subtasks, samples)]
    return []


def task_scores(result: Mapping[str, Any]) -> list[str]:
    """Each task's headline score (PREFERRED order), in eval.general_tasks order: what reports show first."""
    scores, hib = list(result.get("scores", {})), result.get("higher_is_better", {})
    return [s for t in result.get("tasks", []) if (s := pick_general_score(scores, hib, [t]))]
