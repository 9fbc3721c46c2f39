"""The forgetting budget: which methods may win a comparison, given what they cost in general ability.

The rule (compare.max_general_drop; docs/general-ability.md says why):
  1. the general score is `general_ood/<eval.general_score>` (default: the first task's accuracy, with
     tellkit's suite tellkit_wordnet/acc), measured out of distribution by lm-evaluation-harness;
  2. a method's change is its mean over seeds minus base's, paired by item (and over seeds) for the
     interval; its drop is that change against the score's direction (a fall in accuracy, a rise in
     bits per byte), in the score's own units;
  3. a method breaks the budget when its drop's point estimate exceeds compare.max_general_drop. The
     interval is reported beside it, and a method whose interval reaches over the budget while its
     point estimate does not is named as near it;
  4. base is the reference (drop 0) and always within; null turns the rule off (task score only), and
     so does a comparison with no general score measured (then the report says so).
"""

from __future__ import annotations

import math

from . import general_ood as ood
from . import pooled


def general_key(result: dict, chosen: str | None = None) -> str | None:
    """'general_ood/TASK/METRIC', the general score of a comparison's cells (None when none measured it)."""
    for cell in result["cells"]:
        name = ood.general_score(cell["metrics"].get(ood.NAME), chosen)
        if name:
            return f"{ood.NAME}/{name}"
    return None


def ood_keys(cells: list[dict]) -> list[str]:
    """'general_ood/TASK/METRIC' for each task's headline score, in eval.general_tasks order."""
    for c in cells:
        res = c["metrics"].get(ood.NAME)
        if res:
            return [f"{ood.NAME}/{s}" for s in ood.task_scores(res)]
    return []


def changes(result: dict, key: str) -> dict[str, dict]:
    """{method: difference from base of `key`} ("mean_diff", "ci_low", "ci_high", "verdict", ...)."""
    groups = {m: [c["metrics"] for c in result["cells"] if c["method"] == m] for m in result["methods"] if m != "base"}
    return grouped_changes(groups, [c["metrics"] for c in result["cells"] if c["method"] == "base"], key)


def grouped_changes(groups: dict, base: list[dict], key: str) -> dict:
    """{group: `key` of the group's per-seed results minus base's}, paired by item (and over seeds) where
    the results keep item rows; groups or a base without the score are left out."""
    metric = pooled.split(key)[0]
    if not base or not any(metric in r for r in base):
        return {}
    return {g: pooled.difference(key, own, base) for g, own in groups.items()
            if own and all(metric in r for r in own)}


def _drop(change: float, higher_is_better: bool) -> float:
    return -change if higher_is_better else change


def judge(result: dict, general_score: str | None, budget: float | None) -> dict | None:
    """Each method's change in the general score and whether it is within `budget`; None when the comparison
    has no general score with a base to measure from."""
    key = general_key(result, general_score)
    if key is None:
        return None
    diffs = changes(result, key)
    if not diffs:
        return None
    first = next(c["metrics"] for c in result["cells"] if ood.NAME in c["metrics"])
    hib = pooled.higher_is_better(key, first.get(ood.NAME))
    rows = {"base": {"change": 0.0, "ci_low": 0.0, "ci_high": 0.0, "drop": 0.0, "within": True, "near": False}}
    for m, d in diffs.items():
        drop = _drop(d["mean_diff"], hib)
        worst = max(_drop(d["ci_low"], hib), _drop(d["ci_high"], hib))
        within = None if budget is None or math.isnan(drop) else drop <= budget
        rows[m] = {"change": d["mean_diff"], "ci_low": d["ci_low"], "ci_high": d["ci_high"], "drop": drop,
                   "verdict": d["verdict"], "interval": d.get("interval"), "within": within,
                   "near": bool(within and budget is not None and not math.isnan(worst) and worst > budget)}
    excluded = [m for m in result["methods"] if rows.get(m, {}).get("within") is False]
    return {"key": key, "score": pooled.split(key)[1], "budget": budget, "higher_is_better": hib,
            "methods": rows, "excluded": excluded}


def fmt_change(x: float, key: str) -> str:
    """A change in the general score: accuracy-like scores in points (+1.5 points), others as numbers."""
    if x is None or math.isnan(x):
        return "–"
    metric = pooled.split(key)[1].rpartition("/")[2].split(",")[0]
    if metric in ood.RATES:  # rates in [0, 1]: points read better
        return f"{100 * x:+.1f} points"
    return f"{x:+.3f}"


def rule_words(judged: dict) -> str:
    """The budget in words, e.g. "tellkit_wordnet/acc falls more than 3.0 points below base's"."""
    limit = fmt_change(judged["budget"], judged["key"]).lstrip("+")
    if judged["higher_is_better"]:
        return f"{judged['score']} falls more than {limit} below base's"
    return f"{judged['score']} rises more than {limit} above base's"


def reason(judged: dict | None, winner: str, unconstrained: str) -> str:
    """What the budget did to the verdict, for the winner's reason ("" when it did nothing to say)."""
    if judged is None or judged["budget"] is None:
        return ""
    key, budget, rows = judged["key"], judged["budget"], judged["methods"]
    score = judged["score"]
    limit = fmt_change(budget, key).lstrip("+")
    if unconstrained != winner:
        r = rows[unconstrained]
        return (f"{unconstrained} has the best task score but changes general {score} by "
                f"{fmt_change(r['change'], key)} from base, over the forgetting budget ({limit}, "
                f"compare.max_general_drop), so it cannot win; without the budget {unconstrained} would win")
    over = list(judged["excluded"])
    near = [m for m, r in rows.items() if r.get("near")]
    parts = []
    if over:
        parts.append(f"{', '.join(over)} {'is' if len(over) == 1 else 'are'} over the forgetting budget "
                     f"({limit} of general {score})")
    if near:
        parts.append(f"the interval of {', '.join(near)} reaches over the budget, its point estimate does not")
    if not over:
        parts.append(f"every method is within the forgetting budget (none whose {rule_words(judged)})")
    return "; ".join(parts)


def fmt_diff(d: dict | None, key: str) -> str:
    """A change with its interval, in points for rates: "-6.0 points [-8.1, -3.9]"."""
    if not d or d.get("mean_diff") is None or math.isnan(d["mean_diff"]):
        return "–"
    text = fmt_change(d["mean_diff"], key)
    if not math.isnan(d.get("ci_low", math.nan)):
        low, high = (fmt_change(x, key).split()[0] for x in (d["ci_low"], d["ci_high"]))
        text += f" [{low}, {high}]"
    return text


def sweep_judge(results: list[dict], score: str, general_score: str | None, max_drop: float | None) -> dict | None:
    """The general axis of a sweep: per task scale, one point per method x ratio (seeds pooled) with the mean
    task `score`, the mean general score, each task's change from base (paired by item, over seeds) and
    whether the budget's score stays within `max_drop`. None when no cell measured general ability."""
    key = general_key({"cells": results}, general_score)
    if key is None:
        return None
    first = next(r["metrics"][ood.NAME] for r in results if ood.NAME in r["metrics"])
    keys = [f"{ood.NAME}/{s}" for s in ood.task_scores(first)]
    keys = keys if key in keys else [key, *keys]
    hib = pooled.higher_is_better(key, first)
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((int(r["task_tokens"]), r["method"], float(r["ratio"])), []).append(r["metrics"])
    points = []
    for (t, method, ratio), seeds in groups.items():
        base = groups.get((t, "base", 0.0), [])
        diffs = {k: ({"mean_diff": 0.0, "ci_low": 0.0, "ci_high": 0.0, "verdict": "reference"} if method == "base"
                     else grouped_changes({0: seeds}, base, k).get(0)) for k in keys}
        own = diffs.get(key)
        drop = _drop(own["mean_diff"], hib) if own else math.nan
        points.append({"task_tokens": t, "method": method, "ratio": ratio, "seeds": len(seeds),
                       "score": _mean(seeds, score), "general": _mean(seeds, key), "changes": diffs,
                       "means": {k: _mean(seeds, k) for k in keys},
                       "within": None if max_drop is None or math.isnan(drop) else drop <= max_drop})
    return {"key": key, "keys": keys, "budget": max_drop, "higher_is_better": hib, "points": points,
            "directions": {k: pooled.higher_is_better(k, first) for k in keys}}


def _mean(seeds: list[dict], key: str) -> float:
    metric, name = pooled.split(key)
    vals = [r[metric]["scores"][name]["value"] for r in seeds if name in r.get(metric, {}).get("scores", {})]
    return sum(vals) / len(vals) if vals else math.nan
