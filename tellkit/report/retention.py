"""The held-out general loss beside the task score: in-distribution retention.

The measure is the `general` metric, the mean assistant-token loss on held-out examples from the same
source as the general mix (lower is better), and its change from the untrained model. TELL trains on
that distribution, so a falling loss may only mean it fits the mix's style: reports label it as
in-distribution and put general ability out of distribution (`general_ood`, report/general_axis.py)
first. The table and the trade-off plot (task score against held-out loss, base marked) remain, to
show both.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..methods import METHODS
from ..metrics import pooled
from .html import md_table
from .plots import plot_score_vs_general

GENERAL = "general/loss"


def has_general(keys) -> bool:
    return GENERAL in set(keys)


def _fmt(x: float | None, signed: bool = False) -> str:
    if x is None or math.isnan(x):
        return "–"
    return f"{x:+.3f}" if signed else f"{x:.3f}"


def fmt_change(d: dict | None) -> str:
    """A change from base with its interval, e.g. "+0.210 [+0.150, +0.270]"."""
    if not d or d.get("mean_diff") is None or math.isnan(d["mean_diff"]):
        return "–"
    if math.isnan(d.get("ci_low", math.nan)):
        return _fmt(d["mean_diff"], signed=True)
    return f"{_fmt(d['mean_diff'], True)} [{_fmt(d['ci_low'], True)}, {_fmt(d['ci_high'], True)}]"


# ------------------------------------------------------------------ compare


def compare_changes(cells: list[dict], methods: list[str]) -> dict[str, dict]:
    """{method: general loss of method minus base's, paired by held-out example where possible}."""
    if "base" not in methods:
        return {}
    base = [c["metrics"] for c in cells if c["method"] == "base"]
    if not any(GENERAL in _keys(r) for r in base):
        return {}
    return {m: pooled.difference(GENERAL, [c["metrics"] for c in cells if c["method"] == m], base)
            for m in methods if m != "base"}


def _keys(results: dict) -> set[str]:
    return {f"{metric}/{s}" for metric, res in results.items() for s in res.get("scores", {})}


def compare_points(summary: dict, methods: list[str], score: str) -> list[dict]:
    """One trade-off point per method of a comparison (mean over seeds); the legend names them."""
    return [{"method": m, "score": summary[m]["scores"][score]["mean"],
             "general": summary[m]["scores"][GENERAL]["mean"]}
            for m in methods if score in summary[m]["scores"] and GENERAL in summary[m]["scores"]]


# ------------------------------------------------------------------ sweep


def sweep_points(rows: list[dict], score: str) -> dict[int, list[dict]]:
    """{task_tokens: [one point per method x ratio: mean score, mean general loss, change from base]}.

    `rows` are the sweep's flat per-cell rows (sweep.json "rows"); seeds are averaged. Ratio-free
    methods (sft, sft+anchor) give one point each; base one point per scale."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r.get(GENERAL) is None:
            continue
        groups.setdefault((int(r["task_tokens"]), r["method"], float(r["ratio"])), []).append(r)
    base_loss = {t: _mean([r[GENERAL] for r in g]) for (t, m, _), g in groups.items() if m == "base"}
    order = list(dict.fromkeys(r["method"] for r in rows))  # run order (tell first): the colours of the other plots
    out: dict[int, list[dict]] = {}
    for (t, method, ratio), g in sorted(groups.items(), key=lambda kv: (kv[0][0], order.index(kv[0][1]), kv[0][2])):
        loss = _mean([r[GENERAL] for r in g])
        out.setdefault(t, []).append({
            "method": method, "ratio": ratio, "seeds": len(g),
            "label": "" if method == "base" else f"r={ratio:g}",
            "score": _mean([r.get(score) for r in g]), "general": loss,
            "change": loss - base_loss[t] if t in base_loss else math.nan})
    return out


def _mean(values: list) -> float:
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return sum(vals) / len(vals) if vals else math.nan


def sweep_section(rows: list[dict], score: str, out: Path) -> list[str]:
    """Markdown for a sweep report: per task scale, a table (score, general loss, change from base)
    and the trade-off plot `retention_t<tokens>.png`. Empty when no cell measured `general`."""
    points = sweep_points(rows, score)
    if not points:
        return []
    md = ["## Held-out general loss (same source as the general mix)", "",
          "Held-out general loss = mean assistant-token loss on held-out examples from the general mix's own "
          "source (`general` metric; lower is better). TELL trains on that distribution, so this is "
          "in-distribution retention; general ability out of distribution is the section above. Change = the "
          "cell's loss minus the untrained model's (mean over seeds).", ""]
    for t, pts in sorted(points.items()):
        name = f"retention_t{t}.png"
        plot_score_vs_general(pts, score, out / name, title=f"{score} vs held-out general loss ({t} task tokens)",
                              bounds=pooled.bounds(score))
        # base is evaluated once and copied into every seed's rows: its seed count would only echo the plan
        table = [[p["method"], f"{p['ratio']:g}" if METHODS[p["method"]].by_ratio else "–",
                  p["seeds"] if METHODS[p["method"]].trains else "–", _fmt(p["score"]),
                  _fmt(p["general"]), "0 (reference)" if p["method"] == "base" else _fmt(p["change"], signed=True)]
                 for p in pts]
        md += [f"### {t} task tokens", "",
               md_table(["method", "ratio", "seeds", score, "held-out general loss", "change from base"], table), "",
               f"![retention]({name})", ""]
    return md
