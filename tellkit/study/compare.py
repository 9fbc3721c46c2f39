"""`tellkit compare`: TELL against its baselines, same settings, several seeds, full cost accounting.

The methods (compare.methods) are the rows of tellkit/methods.py: tell, sft, sft+anchor, the
compute-matched sft-matched, general-only, and base (the untrained model, evaluated once).

Each cell is a normal run folder (out/<method>-s<seed>/); finished cells are
reused, so an interrupted compare resumes where it stopped. The cells are planned
and executed like a sweep's (tellkit.study.execute): serially, on `--workers N` or on Ray.
"""

from __future__ import annotations

from pathlib import Path

from ..config import Config
from ..io import write_json_atomic
from ..methods import METHODS, ROWS, require_tell
from ..metrics import pooled
from ..mix.prepare import prepare
from ..owned import require_plan_folder
from .execute import check_execution, execute
from .execute.cell import result as cell_result
from .execute.plan import Cell, Plan, make_plan, store
from .winner import check_best, hand_over

MATCHED = {m.name: m.same_as_tell for m in ROWS if m.same_as_tell}  # comparison.json's "matched"


def plan_compare(cfg: Config, out: Path, prepared) -> Plan:
    """methods x seeds as cells (out/<method>-s<seed>/), sft-matched depending on its seed's TELL cell,
    base once; every cell checked buildable before any trains."""
    trained = [m for m in cfg.compare.methods if METHODS[m].trains]
    cells = [Cell(name=f"{m}-s{seed}", method=m, seed=seed, run_dir=f"{m}-s{seed}",
                  depends_on=f"tell-s{seed}" if METHODS[m].matched else None)
             for seed in cfg.compare.seeds for m in sorted(trained, key=lambda m: m != "tell")]
    cells += [Cell(name=m, method=m, seed=None, run_dir=m) for m in compared_methods(cfg) if not METHODS[m].trains]
    return make_plan("compare", cfg, out, cells, prepared, hint="lower mix.ratio, add general data, or allow "
                     "reuse with mix.allow_general_repeats=true")


def compared_methods(cfg: Config) -> list[str]:
    """compare.methods, and base whenever general ability is measured: it is the reference of that axis."""
    methods = list(cfg.compare.methods)
    return methods + ["base"] if cfg.eval.general_tasks and "base" not in methods else methods


def compare(cfg: Config, out: Path | None = None, *, workers: int = 1, ray: str | None = None,
            cell_cpus: int = 1) -> dict:
    out = Path(out or cfg.output.dir)
    methods = compared_methods(cfg)
    require_tell(methods, "compare.methods")
    # before anything is planned or written: the options, the folder, and a best/ of the user's
    check_execution(workers=workers, ray=ray, cell_cpus=cell_cpus)
    require_plan_folder(out, "compare")
    check_best(out)
    prepared = prepare(cfg)
    plan = plan_compare(cfg, out, prepared)  # bad data/metrics/ratio fail before any cell trains
    store(plan, replan=True)  # a compare's cells do not depend on each other's grid: a new plan is safe
    execute(plan, [c.name for c in plan.cells], workers=workers, ray=ray, cell_cpus=cell_cpus, prepared=prepared)
    cells = [cell_result(plan, c) for c in plan.cells if METHODS[c.method].trains]
    for m in (m for m in methods if not METHODS[m].trains):  # base: evaluated once, greedy, so every seed's score
        untrained = cell_result(plan, plan.cell(m))
        cells += [{**untrained, "seed": seed} for seed in cfg.compare.seeds]
    result = {"methods": methods, "seeds": list(cfg.compare.seeds), "cells": cells,
              "summary": summarise(cells, methods), "differences": differences(cells),
              "matched": MATCHED, "assumptions": assumptions(cfg), "config": cfg.model_dump(mode="json")}
    result["winner"] = hand_over(result, cfg, out)  # names the best method and links its run as best/
    write_json_atomic(out / "comparison.json", result)
    from ..report.compare_report import write_compare_report

    write_compare_report(result, cfg, out)
    return result


def score_values(cells: list[dict], method: str) -> dict[str, list[float]]:
    """{"metric/score": [value per seed]} for one method."""
    values: dict[str, list[float]] = {}
    for c in cells:
        if c["method"] != method:
            continue
        for metric, res in c["metrics"].items():
            for score, v in res["scores"].items():
                values.setdefault(f"{metric}/{score}", []).append(v["value"])
    return values


def method_results(cells: list[dict], method: str) -> list[dict]:
    """One {metric: result} per seed of `method`, in seed order (what pooled intervals take)."""
    return [c["metrics"] for c in cells if c["method"] == method]


def summarise(cells: list[dict], methods: list[str]) -> dict:
    """Per method: each score's mean over seeds with an interval that respects the score's range
    (see metrics.pooled; the entry names it), and the mean cost."""
    out = {}
    for method in methods:
        costs = [c["cost"] for c in cells if c["method"] == method]
        results = method_results(cells, method)
        out[method] = {"scores": {k: pooled.over_seeds(k, results) for k in score_values(cells, method)},
                       "cost": {k: sum(c.get(k, 0) or 0 for c in costs) / max(len(costs), 1)
                                for k in (costs[0] if costs else {})}}
    return out


def differences(cells: list[dict]) -> dict:
    """TELL minus each baseline per score, paired by test item where the results hold per-item rows,
    with a verdict ("no clear difference" if the interval holds 0)."""
    tell, keys = method_results(cells, "tell"), score_values(cells, "tell")
    out = {}
    for other in sorted({c["method"] for c in cells} - {"tell"}):
        others = score_values(cells, other)
        out[f"tell vs {other}"] = {k: pooled.difference(k, tell, method_results(cells, other))
                                   for k in keys if k in others}
    return out


def assumptions(cfg: Config) -> list[str]:
    """Choices that fill gaps in the paper; every report prints them."""
    return [
        "ratio is counted in tokens (general:task) after chat template + anchor, with the model's tokenizer",
        f"LoRA r={cfg.lora.r}, alpha={cfg.lora.alpha}, dropout={cfg.lora.dropout}, targets={cfg.lora.target_modules}",
        f"lr={cfg.train.lr}, epochs={cfg.train.epochs}, batch={cfg.train.batch_size}x{cfg.train.grad_accum}, "
        f"max_length={cfg.train.max_length}, packing={cfg.train.packing}",
        "anchor text is ours (the paper's anchors are unpublished)",
        "sft-matched repeats the task data to TELL's training tokens (same compute)",
        *([f"general ability out of distribution: lm-eval tasks {', '.join(cfg.eval.general_tasks)}, zero-shot, "
           f"no chat template, {'all' if cfg.eval.general_limit is None else f'the first {cfg.eval.general_limit}'} "
           f"items each; forgetting budget {cfg.compare.max_general_drop} on "
           f"{cfg.eval.general_score or 'the first task accuracy'} against base (point estimate)"]
          if cfg.eval.general_tasks else []),
    ]
