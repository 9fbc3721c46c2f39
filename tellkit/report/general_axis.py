"""Both axes of a compare verdict: what each method buys on the task and what it costs in general ability.

General ability is measured out of distribution (`general_ood`: lm-evaluation-harness tasks that no
general mix contains); each method's change from base is paired by item and pooled over seeds, so
the interval is the one a comparison of the same items on the same model deserves. The held-out
general loss (`general`) is the same source as the general mix, so it is reported beside it, labelled
as in-distribution, never as the measure of retention on its own.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..methods import METHODS
from ..metrics import budget, pooled
from ..metrics import general_ood as ood
from ..metrics.budget import fmt_diff, ood_keys
from .html import fmt_ci, md_table
from .plots import plot_score_vs_general

HELD_OUT = "general/loss"
HELD_OUT_LABEL = "held-out general loss (same source as the general mix)"


def label(key: str) -> str:
    """'general_ood/tellkit_wordnet/acc' -> 'tellkit_wordnet/acc'."""
    return pooled.split(key)[1]


def _cost_words(d: dict, key: str, hib: bool) -> str:
    if d["verdict"] == "no clear difference":
        return f"no clear change in {label(key)} ({fmt_diff(d, key)})"
    better = (d["mean_diff"] > 0) == hib
    return f"{fmt_diff(d, key)} {label(key)} ({'better' if better else 'worse'} than base)"


def _results(result: dict, method: str) -> list[dict]:
    return [c["metrics"] for c in result["cells"] if c["method"] == method]


def _changes(result: dict, winner: dict | None, keys: list[str]) -> dict[str, dict]:
    """{key: {method: change from base}}: the winner record's (hand_over computed them), else computed here."""
    stored = (winner or {}).get("general") or {}
    return {k: stored[k] if k in stored else budget.changes(result, k) for k in keys}


def buys_and_costs(result: dict, winner: dict | None, score: str) -> list[str]:
    """The report's opening lines: per trained method, its change from base on the task score and on each
    general score out of distribution (and the held-out loss), with paired 95% intervals."""
    base = _results(result, "base")
    keys = ood_keys(result["cells"])
    if not base:
        return []
    judged = (winner or {}).get("budget") or {}
    first = next((c["metrics"][ood.NAME] for c in result["cells"] if ood.NAME in c["metrics"]), None)
    seeds, changes = len(result["seeds"]), _changes(result, winner, keys)
    lines = [f"**What each method buys and what it costs**, against the untrained model "
             f"({'one seed' if seeds == 1 else f'means of {seeds} seeds'}; 95% intervals paired by item"
             f"{'' if seeds == 1 else ' and over seeds'}):", ""]
    for m in result["methods"]:
        own = _results(result, m)
        if m == "base" or not own:
            continue
        task = pooled.difference(score, own, base)
        clear = task["verdict"] != "no clear difference"
        parts = [f"{task['mean_diff']:+.3f} {score}" + ("" if clear else " (no clear change)")]
        general = [_cost_words(d, k, pooled.higher_is_better(k, first)) for k in keys if (d := changes[k].get(m))]
        parts.append("general ability out of distribution: " + ("; ".join(general) if general else "not measured"))
        held = budget.grouped_changes({m: own}, base, HELD_OUT).get(m)
        if held:
            parts.append(f"{HELD_OUT_LABEL} {fmt_diff(held, HELD_OUT)}")
        over = " — **over the forgetting budget**" if m in judged.get("excluded", []) else ""
        lines.append(f"- **{m}**: " + ", ".join(parts) + over)
    if not keys:
        lines += ["", "General ability out of distribution was not measured (eval.general_tasks is empty)."]
    return lines + [""]


def general_section(result: dict, winner: dict | None, score: str, out: Path) -> list[str]:
    """The general-ability section: every method's out-of-distribution scores and their change from base,
    and the Pareto plot (task score against the budget's general score, base marked, the budget drawn)."""
    keys = ood_keys(result["cells"])
    if not keys:
        return []
    summary, changes = result["summary"], _changes(result, winner, keys)
    judged = (winner or {}).get("budget")
    md = ["## General ability out of distribution", "",
          "Scored by lm-evaluation-harness on tasks that no general mix contains (`eval.general_tasks`); "
          "change from base paired by item (and over seeds).", ""]
    cols, rows = ["method"], []
    for k in keys:
        cols += [label(k), "change from base"]
    cols += ["within budget"] if judged and judged["budget"] is not None else []
    for m in result["methods"]:
        row = [m]
        for k in keys:
            row.append(fmt_ci(summary[m]["scores"].get(k)))
            row.append("0 (reference)" if m == "base" else fmt_diff(changes[k].get(m), k))
        if judged and judged["budget"] is not None:
            within = judged["methods"].get(m, {}).get("within")
            row.append("–" if within is None else "yes" if within else "**no**")
        rows.append(row)
    md += [md_table(cols, rows), ""]
    if judged:
        md += [_budget_note(judged, winner), ""]
    md += _pareto(result, judged, score, out)
    return md


def _budget_note(judged: dict, winner: dict) -> str:
    if judged["budget"] is None:
        return ("Forgetting budget: off (`compare.max_general_drop: null`), the winner is chosen by the task "
                "score only.")
    note = (f"Forgetting budget (`compare.max_general_drop`): a method whose {budget.rule_words(judged)} "
            "(point estimate) cannot win. ")
    if winner["without_budget"] != winner["method"]:
        return note + f"Without it, **{winner['without_budget']}** would win; within it, **{winner['method']}** does."
    return note + f"Without it the winner would be the same ({winner['method']})."


def _pareto(result: dict, judged: dict | None, score: str, out: Path) -> list[str]:
    key = judged["key"] if judged else ood_keys(result["cells"])[0]
    summary = result["summary"]
    points = [{"method": m, "score": summary[m]["scores"][score]["mean"], "general": summary[m]["scores"][key]["mean"]}
              for m in result["methods"] if score in summary[m]["scores"] and key in summary[m]["scores"]]
    if not points:
        return []
    base_x = next((p["general"] for p in points if p["method"] == "base"), None)
    line = None
    if judged and judged["budget"] is not None and base_x is not None:
        line = base_x - judged["budget"] if judged["higher_is_better"] else base_x + judged["budget"]
    hib = judged["higher_is_better"] if judged else True
    plot_score_vs_general(points, score, out / "pareto.png", title=f"{score} vs general {label(key)}",
                          bounds=pooled.bounds(score), budget=line,
                          xlabel=f"general {label(key)}, out of distribution ({'higher' if hib else 'lower'} "
                                 "keeps more)")
    return ["Task score against general ability, one point per method (means over seeds); the star is the "
            "untrained model, the red line the forgetting budget (methods on its shaded side cannot win).", "",
            "![pareto](pareto.png)", ""]


# ------------------------------------------------------------------ sweep


def sweep_lines(general: dict | None, score: str) -> list[str]:
    """A sweep report's opening lines: per task scale and method, the ratio with the best task score, what
    it scores and what it costs in general ability against base."""
    if not general:
        return []
    lines = [f"**What each method buys and what it costs** (per task scale, each method at its best {score}; "
             "general ability out of distribution, change from base with paired 95% intervals):", ""]
    for t in sorted({p["task_tokens"] for p in general["points"]}):
        at = [p for p in general["points"] if p["task_tokens"] == t and p["method"] != "base"]
        for method in dict.fromkeys(p["method"] for p in at):
            own = [p for p in at if p["method"] == method]
            best = max(own, key=lambda p: -math.inf if math.isnan(p["score"]) else p["score"])
            costs = [_cost_words(d, k, general["directions"][k]) for k, d in best["changes"].items() if d]
            if not costs and not any(p["method"] == "base" for p in general["points"] if p["task_tokens"] == t):
                # a partial sweep: the cells' own scores are in, base (the reference, planned last) is not yet
                measured = [f"{label(k)} {v:.3f}" for k, v in best["means"].items() if not math.isnan(v)]
                costs = [", ".join(measured) + " (no change from base yet: base is not evaluated)"] if measured else []
            over = " — **over the forgetting budget**" if best["within"] is False else ""
            lines.append(f"- {t} task tokens, **{method}** (ratio {best['ratio']:g}): {score} {best['score']:.3f}; "
                         f"general: {'; '.join(costs) or 'not measured'}{over}")
    return lines + [""]


def sweep_section(general: dict | None, score: str, out: Path) -> list[str]:
    """Per task scale: every cell's general scores and their change from base, and the Pareto plot
    (task score against the budget's general score, one point per method x ratio, base marked, budget drawn)."""
    if not general:
        return []
    key, keys = general["key"], general["keys"]
    md = ["## General ability out of distribution", "",
          "Scored by lm-evaluation-harness on tasks that no general mix contains (`eval.general_tasks`); means "
          "over seeds, change from base paired by item and over seeds. "
          + (f"Forgetting budget (`compare.max_general_drop`): a cell whose "
             f"{budget.rule_words({**general, 'score': label(key)})} is over it." if general["budget"] is not None
             else "No forgetting budget (`compare.max_general_drop: null`)."), ""]
    for t in sorted({p["task_tokens"] for p in general["points"]}):
        pts = [p for p in general["points"] if p["task_tokens"] == t]
        cols = ["method", "ratio", "seeds", score] + [c for k in keys for c in (label(k), "change from base")]
        # base is evaluated once (no training, no seed): its row per seed is the same evaluation
        rows = [[p["method"], "–" if not METHODS[p["method"]].by_ratio else f"{p['ratio']:g}",
                 p["seeds"] if METHODS[p["method"]].trains else "–",
                 _num(p["score"]), *[c for k in keys for c in (_num(p["means"].get(k, math.nan)),
                                                                "0 (reference)" if p["method"] == "base"
                                                                else fmt_diff(p["changes"].get(k), k))]]
                for p in pts]
        name = f"pareto_t{t}.png"
        base_x = next((p["general"] for p in pts if p["method"] == "base"), None)
        line = None
        if general["budget"] is not None and base_x is not None and not math.isnan(base_x):
            line = base_x - general["budget"] if general["higher_is_better"] else base_x + general["budget"]
        plot_score_vs_general([{**p, "label": "" if p["method"] == "base" else f"r={p['ratio']:g}"} for p in pts],
                              score, out / name, title=f"{score} vs general {label(key)} ({t} task tokens)",
                              bounds=pooled.bounds(score), budget=line,
                              xlabel=f"general {label(key)}, out of distribution "
                                     f"({'higher' if general['higher_is_better'] else 'lower'} keeps more)")
        md += [f"### {t} task tokens", "", md_table(cols, rows), "", f"![pareto]({name})", ""]
    return md


def _num(x: float | None) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"
