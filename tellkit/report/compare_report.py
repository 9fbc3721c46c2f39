"""report.md / report.html for `tellkit compare`: what each method buys on the task and costs in general
ability first, then the winner, the outcome, scores with cost, general ability out of distribution with the
Pareto plot, the held-out (in-distribution) general loss, differences, plots, samples, assumptions."""

from __future__ import annotations

import math
from pathlib import Path

from ..methods import METHODS
from ..metrics import pooled
from ..metrics.bootstrap import STUDENT_T
from ..metrics.headline import headline_scores
from .general_axis import HELD_OUT_LABEL, buys_and_costs, general_section
from .machine import machine_line
from .html import fmt_ci, md_table, shorten, write_report
from .losses import write_method_plots
from .plots import plot_metric_bars, plot_score_vs_general
from .retention import GENERAL, compare_changes, compare_points, fmt_change, has_general


def readable_verdict(pair: str, verdict: str) -> str:
    """'A better' / 'B better' from difference_ci, named: 'tell better' / '<baseline> better'."""
    a, b = pair.split(" vs ")
    return {"A better": f"{a} better", "B better": f"{b} better"}.get(verdict, verdict)


def outcome_lines(result: dict, scores: list[str]) -> list[str]:
    lines = []
    for pair, diffs in result["differences"].items():
        if not METHODS[pair.split(" vs ")[1]].baseline:
            continue
        for score in scores[:2]:
            d = diffs.get(score)
            if d is None:
                continue
            verdict = readable_verdict(pair, d["verdict"])
            lines.append(f"- **{pair}**, {score}: difference {d['mean_diff']:+.3f} "
                         f"(95% CI [{d['ci_low']:.3f}, {d['ci_high']:.3f}]) → **{verdict}**")
    return lines


def interval_note(summary: dict, scores: list[str]) -> str:
    """Which 95% interval each shown score uses (metrics.bootstrap picks it from the data)."""
    used: dict[str, list[str]] = {}
    for k in scores:
        kinds = {m["scores"][k].get("interval", STUDENT_T) for m in summary.values() if k in m["scores"]}
        for kind in sorted(kinds):
            used.setdefault(kind, []).append(k)
    parts = [f"{kind} ({', '.join(ks)})" for kind, ks in used.items()]
    return "95% intervals: " + "; ".join(parts) + "." if parts else ""


def winner_lines(winner: dict | None) -> list[str]:
    """The verdict that opens the report: who won, why, and how to use the adapter."""
    if not winner:
        return []
    score, method = winner["score"], winner["method"]
    row = next(r for r in winner["rows"] if r["method"] == method)
    mean = fmt_ci({"mean": row["mean"], "ci_low": row["ci_low"], "ci_high": row["ci_high"]})
    seeds = f"mean of {winner['n_seeds']} seeds" if winner["n_seeds"] > 1 else "one seed"
    if method == "base":
        return [f"**Winner: base, the untrained model** — {score} {mean} ({seeds}).", "",
                f"Why: {winner['reason']}", "",
                "**No adapter is handed over**: `best/` is not written.", ""]
    lines = [f"**Winner: `{method}`** — {score} {mean} ({seeds}).", "", f"Why: {winner['reason']}", ""]
    if winner.get("best_dir"):
        lines += [f"`best/` is `{Path(winner['run_dir']).name}`, the seed with the best {score} "
                  f"({winner['seed_value']:.3f}; picked on the evaluation data, so quote the mean above). Use it:", "",
                  "```", *winner["commands"], "```", ""]
    return lines


def _round(x, digits: int):
    return round(x, digits) if isinstance(x, (int, float)) else None


def _change_cells(changes: dict, method: str) -> list[str]:
    if method == "base":
        return ["0 (reference)"]
    return [fmt_change(changes.get(method))]


def write_compare_report(result: dict, cfg, out: Path) -> tuple[Path, Path]:
    summary, methods = result["summary"], result["methods"]
    scores = headline_scores(summary)
    all_keys = {k for m in summary.values() for k in m["scores"]}
    general = has_general(all_keys)
    changes = compare_changes(result["cells"], methods) if general else {}
    winner = result.get("winner")
    md = [f"# TELL vs baselines — {Path(cfg.task.path).parent.name}/{Path(cfg.task.path).name}", "",
          *buys_and_costs(result, winner, winner["score"] if winner else scores[0]),
          *winner_lines(winner),
          f"Model `{cfg.model.name}`, seeds {result['seeds']}, ratio {cfg.mix.ratio:g} (tokens), "
          f"task token budget {cfg.task.token_budget or 'all'}. Scores are means over seeds. "
          + interval_note(summary, scores + ([GENERAL] if general else [])), "",
          *([line, ""] if (line := machine_line([out / c["run_dir"] for c in result["cells"] if c.get("run_dir")]))
            else []),
          "## Outcome", *(outcome_lines(result, scores) or ["- (no TELL/SFT pair to compare)"]), "",
          "## Scores and cost", ""]
    retention_cols = [HELD_OUT_LABEL, "change from base"] if general else []
    rows = [[m, *[fmt_ci(summary[m]["scores"].get(k)) for k in scores],
             *([fmt_ci(summary[m]["scores"].get(GENERAL)), *_change_cells(changes, m)] if general else [])]
            for m in methods]
    md += [md_table(["method", *scores, *retention_cols], rows), ""]
    cost_rows = []
    for m in methods:
        c = summary[m]["cost"]
        cost_rows.append([m, int(c.get("task_tokens", 0)), int(c.get("train_tokens", 0)),
                          int(c.get("optimizer_steps", 0)), c.get("task_epochs"), _round(c.get("wall_seconds"), 1),
                          _round(c.get("tokens_per_second"), 0),
                          result["matched"].get(m, "tell itself" if m == "tell" else "no")])
    md += [md_table(["method", "task tokens", "train tokens", "steps", "task epochs", "wall s", "tok/s",
                     "compute-matched to tell"], cost_rows, floatfmt="{:g}")]
    md += ["", "Compute-matched comparisons: " + "; ".join(f"`{k}`: {v}" for k, v in result["matched"].items())
           + ". `sft` and `sft+anchor` train the same epochs over the task data as `tell`, so fewer steps.", ""]
    if general:
        md += ["Held-out general loss: mean assistant-token loss on held-out examples from the same source as the "
               "general mix (lower is better). TELL trains on that distribution, so this is in-distribution "
               "retention, not general ability; change from base paired by held-out example.", ""]
    elif cfg.general and cfg.general.heldout_path:
        md += ["(Add `general` to `eval.metrics` for the held-out loss on the general mix's own source.)", ""]
    md += general_section(result, winner, winner["score"] if winner else scores[0], out)

    md += ["## Differences (TELL minus baseline)", ""]
    drows = [[pair, k, f"{d['mean_diff']:+.3f}", f"[{d['ci_low']:.3f}, {d['ci_high']:.3f}]",
              readable_verdict(pair, d["verdict"])]
             for pair, diffs in result["differences"].items() for k, d in diffs.items() if k in scores]
    md += [md_table(["pair", "score", "diff", "95% CI", "verdict"], drows), ""]

    md += ["## Plots", ""]
    for score in scores:
        name = score.replace("/", "_").replace("+", "p") + ".png"
        rows_ = {m: {**summary[m]["scores"].get(score, {"mean": math.nan, "ci_low": math.nan, "ci_high": math.nan}),
                     "n_seeds": len(result["seeds"])} for m in methods}
        plot_metric_bars(rows_, score, out / name, title=score, bounds=pooled.bounds(score))
        md.append(f"![{score}]({name})")
    if general and scores:
        points = compare_points(summary, methods, scores[0])
        if points:
            plot_score_vs_general(points, scores[0], out / "retention.png",
                                  title=f"{scores[0]} vs held-out general loss (in distribution)",
                                  bounds=pooled.bounds(scores[0]))
            md += ["", "![retention](retention.png)"]
    seed0 = result["seeds"][0]
    md += ["", *write_method_plots({c["method"]: c["run_dir"] for c in result["cells"]
                                    if c["seed"] == seed0 and c.get("run_dir")}, out, f"seed {seed0}")]

    md += ["", "## Sample outputs (seed %d)" % result["seeds"][0], ""]
    md += _samples_table(result["cells"], methods, result["seeds"][0])
    md += ["", "## Assumptions (where the paper is silent)", "", *[f"- {a}" for a in result["assumptions"]], ""]
    return write_report("\n".join(md), out, title="tellkit compare")


def _samples_table(cells: list[dict], methods: list[str], seed: int) -> list[str]:
    by_method = {c["method"]: c["samples"] for c in cells if c["seed"] == seed}
    first = next((s for s in by_method.values() if s), [])
    out = []
    for i, sample in enumerate(first[:2]):
        out += [f"**Example {i + 1}** — gold: `{shorten(sample['gold'])}`", ""]
        out.append(md_table(["method", "output"], [[m, _code(by_method[m][i].get("output", ""))]
                                                   for m in methods if len(by_method.get(m) or []) > i]))
        out.append("")
    return out


def _code(text: str) -> str:
    return f"`{shorten(text)}`" if text.strip() else "(empty output)"  # `` would render as two backticks
