"""report.md / report.html for `tellkit compare`: outcome first, then costs, plots, samples, assumptions."""

from __future__ import annotations

import json
import math
from pathlib import Path

from .html import md_table, shorten, write_report
from .plots import plot_loss_curves, plot_metric_bars

HEADLINE_ORDER = ("label/accuracy", "label/f1", "json/strict", "json/field_exact", "json/schema",
                  "chrf/chrf", "chrf++/chrf++", "bleu/bleu", "bleurt/bleurt")


def headline_scores(summary: dict, k: int = 4) -> list[str]:
    available = {s for m in summary.values() for s in m["scores"]}
    first = [s for s in HEADLINE_ORDER if s in available]
    rest = sorted(available - set(first))
    return (first + rest)[:k]


def fmt_ci(s: dict | None) -> str:
    if not s or s.get("mean") is None or math.isnan(s["mean"]):
        return "–"
    if math.isnan(s.get("ci_low", math.nan)):
        return f"{s['mean']:.3f}"
    return f"{s['mean']:.3f} [{s['ci_low']:.3f}, {s['ci_high']:.3f}]"


def readable_verdict(pair: str, verdict: str) -> str:
    """'A better' / 'B better' from difference_ci, named: 'tell better' / '<baseline> better'."""
    a, b = pair.split(" vs ")
    return {"A better": f"{a} better", "B better": f"{b} better"}.get(verdict, verdict)


def outcome_lines(result: dict, scores: list[str]) -> list[str]:
    lines = []
    for pair, diffs in result["differences"].items():
        if pair.split(" vs ")[1] not in ("sft", "sft-matched"):
            continue
        for score in scores[:2]:
            d = diffs.get(score)
            if d is None:
                continue
            verdict = readable_verdict(pair, d["verdict"])
            lines.append(f"- **{pair}**, {score}: difference {d['mean_diff']:+.3f} "
                         f"(95% CI [{d['ci_low']:.3f}, {d['ci_high']:.3f}]) → **{verdict}**")
    return lines


def write_compare_report(result: dict, cfg, out: Path) -> tuple[Path, Path]:
    summary, methods = result["summary"], result["methods"]
    scores = headline_scores(summary)
    md = [f"# TELL vs baselines — {Path(cfg.task.path).parent.name}/{Path(cfg.task.path).name}", "",
          f"Model `{cfg.model.name}`, seeds {result['seeds']}, ratio {cfg.mix.ratio:g} (tokens), "
          f"task token budget {cfg.task.token_budget or 'all'}. Mean over seeds with 95% t-intervals.", "",
          "## Outcome", *(outcome_lines(result, scores) or ["- (no TELL/SFT pair to compare)"]), "",
          "## Scores and cost", ""]
    rows = []
    for m in methods:
        s, c = summary[m]["scores"], summary[m]["cost"]
        rows.append([m, *[fmt_ci(s.get(k)) for k in scores], int(c.get("task_tokens", 0)),
                     int(c.get("train_tokens", 0)), int(c.get("optimizer_steps", 0)),
                     c.get("task_epochs", "–"), c.get("wall_seconds", "–"), c.get("tokens_per_second", "–"),
                     result["matched"].get(m, "tell itself" if m == "tell" else "no")])
    md.append(md_table(["method", *scores, "task tokens", "train tokens", "steps", "task epochs",
                        "wall s", "tok/s", "compute-matched to tell"], rows))
    md += ["", "Compute-matched comparisons: " + "; ".join(f"`{k}`: {v}" for k, v in result["matched"].items())
           + ". `sft` and `sft+anchor` train the same epochs over the task data as `tell`, so fewer steps.", ""]

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
        plot_metric_bars(rows_, score, out / name, title=score)
        md.append(f"![{score}]({name})")
    curves = _loss_curves(result["cells"])
    if curves:
        plot_loss_curves(curves, out / "loss_curves.png", title=f"Training loss (seed {result['seeds'][0]})",
                         smoothing=0.6)
        md += ["", "![loss curves](loss_curves.png)"]

    md += ["", "## Sample outputs (seed %d)" % result["seeds"][0], ""]
    md += _samples_table(result["cells"], methods, result["seeds"][0])
    md += ["", "## Assumptions (where the paper is silent)", "", *[f"- {a}" for a in result["assumptions"]], ""]
    return write_report("\n".join(md), out, title="tellkit compare")


def _loss_curves(cells: list[dict]) -> dict:
    curves = {}
    seed0 = cells[0]["seed"] if cells else None
    for c in cells:
        path = Path(c["run_dir"]) / "loss_log.json"
        if c["seed"] == seed0 and path.exists():
            curves[c["method"]] = [(r["step"], r["loss"]) for r in json.loads(path.read_text())]
    return curves


def _samples_table(cells: list[dict], methods: list[str], seed: int) -> list[str]:
    by_method = {c["method"]: c["samples"] for c in cells if c["seed"] == seed}
    first = next((s for s in by_method.values() if s), [])
    out = []
    for i, sample in enumerate(first[:2]):
        out += [f"**Example {i + 1}** — gold: `{shorten(sample['gold'])}`", ""]
        out.append(md_table(["method", "output"], [[m, f"`{shorten(by_method.get(m, [{}] * 3)[i].get('output', ''))}`"]
                                                   for m in methods if by_method.get(m)]))
        out.append("")
    return out
