"""report.md / report.html for `tellkit sweep`: the emergence curve, scale curves, the multiplier."""

from __future__ import annotations

import math
from pathlib import Path

from ..methods import METHODS
from ..metrics.bootstrap import STUDENT_T
from .general_axis import sweep_lines
from .general_axis import sweep_section as general_section
from .html import md_table, write_report
from .losses import write_method_plots
from .machine import machine_line
from .plots import plot_ratio_curves, plot_scale_curves
from .retention import GENERAL, sweep_section


def write_sweep_report(summary: dict, rows: list[dict], cfg, out: Path) -> tuple[Path, Path]:
    score, curves = summary["primary_score"], summary["curves"]
    md = [f"# TELL sweep — {Path(cfg.task.path).parent.name}/{Path(cfg.task.path).name}", ""]
    if summary.get("partial"):  # `tellkit report` while cells are still missing
        md += [f"**Partial results: {summary['cells_done']} of {summary['cells_planned']} planned cells are done.** "
               "Curves and the multiplier use only those; rerun the sweep command to finish it.", ""]
    wall = (f"Sweep wall time {summary['total_seconds']} s" if summary.get("total_seconds") is not None
            else "Written by `tellkit report`")
    md += sweep_lines(summary.get("general"), score)  # both axes first: task score and general ability
    # cells run (base counts once), not result rows: base's one evaluation is a row per seed and scale
    md += [f"{summary.get('cells_done', summary['cells'])} cells, primary score **{score}**, {seeds_phrase(rows, cfg.sweep.seeds)}. "
           f"{wall} (sum of the cells' training time {summary['sum_of_cell_seconds']} s; data were tokenized once). "
           + interval_line(curves), ""]
    machine = machine_line(sorted({out / r["run_dir"] for r in rows if r.get("run_dir")}))
    md += [machine, ""] if machine else []

    md += ["## Emergence: score vs general:task ratio", ""]
    mixed = cfg.sweep.mixed_task_tokens
    sft_only = sorted({r["task_tokens"] for r in rows} - set(mixed)) if mixed else []
    if sft_only:  # a ratio curve there would be one flat line: say so instead of drawing it
        md += [f"At {', '.join(map(str, sft_only))} task tokens only the ratio-free methods ran "
               f"(`sweep.mixed_task_tokens: {mixed}`), so there is no curve over the ratio.", ""]
    for t in sorted({r["task_tokens"] for r in rows} - set(sft_only)):
        ran = {r["ratio"] for r in rows if r["task_tokens"] == t and _every_ratio(r["method"])}
        xs = sorted(ran or set(cfg.sweep.ratios))  # the ratios this scale ran (a budget may cut some)
        series = {}
        for method, by_t in curves.items():
            pts = by_t.get(t) or by_t.get(str(t))
            if not pts and METHODS[method].trains and not METHODS[method].task:  # general-only: one scale only
                pts = next(iter(by_t.values()))
            if not pts:
                continue
            if len(pts) == 1 and not _every_ratio(method):  # sft, general-only: drawn flat across the ratios
                pts = [{**pts[0], "x": x} for x in xs]
            series[method] = pts
        name = f"ratio_curve_t{t}.png"
        plot_ratio_curves(series, score, out / name)
        md += [f"### {t} task tokens", "", f"![ratio curve]({name})", ""]
        md += _task_loss_lines(rows, t, out)

    scale = {m: [{**max(pts, key=lambda p: -math.inf if math.isnan(p["mean"]) else p["mean"]), "x": int(t)}
                 for t, pts in sorted(by_t.items(), key=lambda kv: int(kv[0]))]
             for m, by_t in curves.items() if METHODS[m].trains and METHODS[m].task}
    if scale:
        plot_scale_curves(scale, score, out / "scale_curve.png")
        md += ["## Score vs task tokens (TELL at its best ratio)", "", "![scale curve](scale_curve.png)", ""]

    md += ["## Data-efficiency multiplier", "",
           "How many task tokens SFT needs to match TELL's best ratio (log-linear interpolation between the "
           "swept SFT scales). The 95% interval resamples test items (the same ones for TELL and every SFT scale) "
           "and seeds, and interpolates again; \"open\" = in over 2.5% of the draws SFT never reaches TELL within "
           "the swept scales. Older cells without per-item rows fall back to TELL's interval alone.", ""]
    mrows = [[m["task_tokens"], f"{m['tell_ratio']:g}", _f(m["tell_score"]), _f(m["sft_tokens_needed"], 0),
              _f(m["multiplier"], 2), _interval(m), m["note"]] for m in summary["multiplier"]]
    md += [md_table(["task tokens", "TELL ratio", "TELL score", "SFT tokens needed", "multiplier",
                     "interval", "note"], mrows) if mrows else "(needs tell and sft in sweep.methods)", ""]

    if summary.get("over_budget"):
        md += [f"Left out as over `sweep.max_train_tokens` ({summary['max_train_tokens']} training tokens): "
               + ", ".join(f"`{n}`" for n in summary["over_budget"]) + ".", ""]
    md += general_section(summary.get("general"), score, out)  # out of distribution: table and Pareto plots
    md += sweep_section(rows, score, out)  # held-out loss (in distribution) and its change from base, trade-off plot
    md += ["## All cells", ""]
    retention = [GENERAL] if any(r.get(GENERAL) is not None for r in rows) else []
    cols = ["method", "task_tokens", "ratio", "seed", score, *retention, "train_tokens", "optimizer_steps",
            "wall_seconds"]
    md += [md_table(cols, [[r.get(c) for c in cols] for r in rows]), ""]
    md += ["## Assumptions (where the paper is silent)", "", *[f"- {a}" for a in summary["assumptions"]], ""]
    return write_report("\n".join(md), out, title="tellkit sweep")


def interval_line(curves: dict) -> str:
    """Which 95% interval the bands and intervals use (metrics.pooled picks it from the results;
    a summary written before intervals were named used Student-t)."""
    kinds = sorted({p.get("interval", STUDENT_T) for by_t in curves.values() for pts in by_t.values()
                    for p in pts} - {"none"})
    return f"Bands and intervals: 95% {', '.join(kinds)}." if kinds else ""


def _every_ratio(method: str) -> bool:
    """Trained on task data at every swept ratio (tell, sft-matched): the methods a scale's ratios come from."""
    m = METHODS[method]
    return m.task and (m.general or m.matched)


def _task_loss_lines(rows: list[dict], t: int, out: Path) -> list[str]:
    """Task-loss overlay at one scale, first seed: TELL at its largest ratio, sft-matched at that
    ratio, and sft."""
    at = [r for r in rows if r["task_tokens"] == t and r.get("run_dir")]
    seed = min((r["seed"] for r in at if r.get("seed") is not None), default=None)
    tell = [r for r in at if r["method"] == "tell" and r["seed"] == seed]
    top = max((r["ratio"] for r in tell), default=None)
    runs = {f"{r['method']} r{r['ratio']:g}" if r["method"] != "sft" else "sft": out / r["run_dir"]
            for r in at if r["seed"] == seed and (r["method"] == "sft" or
                                                  (_every_ratio(r["method"]) and r["ratio"] == top))}
    return write_method_plots(runs, out, f"{t} task tokens, seed {seed}", suffix=f"_t{t}")


def seeds_phrase(rows: list[dict], planned: list[int]) -> str:
    """'seeds [0, 1, 2]', or 'seeds [0] of [0, 1, 2] planned' while a sweep is partial (base's one evaluation
    is a row per planned seed, so only trained cells say which seeds ran)."""
    done = sorted({int(r["seed"]) for r in rows if METHODS[r["method"]].trains})
    return f"seeds {done}" if done == sorted(planned) else f"seeds {done} of {list(planned)} planned"


def _interval(m: dict) -> str:
    low, high = m["interval"]
    joint = m.get("joint", False)  # False: TELL's interval alone (cells without per-item rows)
    high_text = "open" if joint and high is None and m["multiplier"] is not None else _f(high, 2)
    return f"[{_f(low, 2)}, {high_text}]" + ("" if joint else " (TELL's interval)")


def _f(x, digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"
