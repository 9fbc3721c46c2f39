"""The data-efficiency multiplier: how much task data plain SFT needs to match TELL at one task scale.

The paper's headline is a multiplier ("TELL at 10^4 task tokens ~ SFT on ~10x the data"), so tellkit
measures it the same way: SFT's scale curve (its mean score at each swept task-token count) is
interpolated log-linearly to TELL's best mean score at that scale, and the multiplier is the SFT tokens
needed divided by TELL's.

Its interval resamples both sides. SFT's curve is measured too (on one seed at three scales its noise
is as large as TELL's), and both were scored on the same test items, so each bootstrap draw picks items
once for TELL's cell and every SFT scale (a paired draw) and seeds per cell, recomputes every score and
interpolates again. Where the methods agree on which items are hard the paired interval is narrower than
TELL's interval on SFT's mean curve; where they disagree, wider. A draw where SFT's resampled curve never
reaches TELL counts as beyond the largest scale: the interval's upper end is then open (None).
Cells without per-item rows (older results) fall back to TELL's interval on SFT's mean curve.
TELL's best ratio is chosen once, on the full data, and kept in every draw.
"""

from __future__ import annotations

import math

import numpy as np

from ..metrics import bootstrap, pooled

ALPHA = 0.05


def multipliers(c: dict, results: list[dict] | None = None, score: str | None = None) -> list[dict]:
    """One entry per TELL scale: SFT tokens needed, the multiplier, its interval and a note.

    `c` as from sweep.curves(); `results` (the sweep's per-cell results, with "metrics") and `score`
    give the joint bootstrap interval; without them the interval comes from TELL's interval alone."""
    if "tell" not in c or "sft" not in c:
        return []
    sft = sorted((t, pts[0]["mean"]) for t, pts in c["sft"].items())
    out = []
    for t, pts in sorted(c["tell"].items()):
        best = max(pts, key=lambda p: -math.inf if math.isnan(p["mean"]) else p["mean"])
        need = tokens_for(sft, best["mean"])
        joint = _joint_interval(results, score, t, best["x"], [s for s, _ in sft]) if results and score else None
        if joint is None:
            low, high = (tokens_for(sft, v) for v in (best["ci_low"], best["ci_high"]))
            interval, how = [n / t if n else None for n in (low, high)], "TELL's interval"
        else:
            interval, how = [n / t if n is not None else None for n in joint], "items x seeds, TELL and SFT"
        out.append({"task_tokens": t, "tell_ratio": best["x"], "tell_score": best["mean"],
                    "sft_tokens_needed": need, "multiplier": need / t if need else None,
                    "interval": interval, "joint": joint is not None, "interval_from": how, "note": _note(sft, best["mean"], need)})
    return out


def tokens_for(sft: list[tuple[int, float]], target: float) -> float | None:
    """Task tokens at which SFT's curve [(tokens, score)] reaches `target` (log-linear between scales);
    its smallest scale if it is already there, None if it never is."""
    if target is None or math.isnan(target):
        return None
    if target <= sft[0][1]:
        return float(sft[0][0])
    for (t0, v0), (t1, v1) in zip(sft, sft[1:]):
        if v0 < target <= v1:
            frac = (target - v0) / (v1 - v0)
            return float(np.exp(np.log(t0) + frac * (np.log(t1) - np.log(t0))))
    return None


def _note(sft: list[tuple[int, float]], target: float, need: float | None) -> str:
    if need is None:
        return "SFT never reaches TELL's score within the swept scales"
    if target <= sft[0][1]:
        return f"SFT already matches at its smallest scale ({sft[0][0]} tokens): multiplier is an upper bound"
    return ""


def _cell_items(results: list[dict], score: str, method: str, t: int, ratio: float) -> list | None:
    """The per-seed item rows of one cell of the sweep (None where any seed lacks them)."""
    metrics = [r["metrics"] for r in results
               if r["method"] == method and int(r["task_tokens"]) == int(t) and float(r["ratio"]) == float(ratio)]
    return pooled.items(score, metrics)


def _joint_interval(results: list[dict], score: str, t: int, ratio: float, scales: list[int],
                    n_resamples: int = 1000, seed: int = 0) -> tuple[float | None, float | None] | None:
    """(low, high) SFT tokens needed, from draws of TELL's cell and SFT's curve on the same items."""
    tell = _cell_items(results, score, "tell", t, ratio)
    sft = [_cell_items(results, score, "sft", s, 0.0) for s in scales]
    if tell is None or any(s is None for s in sft):
        return None
    statistic = pooled.statistic(score, next(r["metrics"][pooled.split(score)[0]] for r in results
                                             if r["method"] == "tell"))
    try:
        draws = bootstrap.joint_crossed_resamples([tell, *sft], statistic, n_resamples=n_resamples, seed=seed)
    except ValueError:  # the cells were scored on different test items: no paired draw exists
        return None
    need = np.array([tokens_for(list(zip(scales, d[1:])), d[0]) or math.inf for d in draws])
    low, high = np.quantile(need, [ALPHA / 2, 1 - ALPHA / 2], method="inverted_cdf")
    return tuple(float(x) if math.isfinite(x) else None for x in (low, high))
