"""`tellkit sweep`: the ratio x task-scale x method x seed grid, resumable and parallel, with the
emergence curve and the data-efficiency multiplier.

Ratio-free methods (sft, sft+anchor) run once per (scale, seed) and appear as flat reference lines;
tell and sft-matched run at every ratio; sft+anchor reuses tell's ratio-0 cell when there is one (the
same mixture). general-only (no task data) runs once per seed at the largest general volume, base is
evaluated once. `sweep.max_train_tokens` leaves out cells over a compute budget, so high ratios run
only at small scales; `sweep.mixed_task_tokens` runs the ratio methods at some scales only (TELL at 10^4
against SFT at 10^4..10^5). The grid is planned once (plan.json, see tellkit.study.execute.plan) and then executed
serially, on `--workers N` or on Ray; `--only` runs a part of the same plan. Every cell is a normal run
folder under cells/; a finished cell is never re-run, an interrupted one resumes from its checkpoint, a
failed one restarts. Tokenization happens once per data set (the cache is keyed by data, tokenizer,
template, anchor and max_length). The summary is written once every cell is done."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

from ..config import Config
from ..data.anchor import anchor_text
from ..errors import ConfigError, TellkitError
from ..io import write_json_atomic, write_text_atomic
from ..methods import METHODS, require_tell
from ..metrics import pooled
from ..metrics.budget import sweep_judge
from ..metrics.headline import HEADLINE_ORDER
from ..mix.prepare import prepare
from ..owned import require_plan_folder
from .compare import assumptions
from .execute import check_execution, execute
from .execute.cell import is_done, result
from .execute.plan import Cell, Plan, make_plan, select, store
from .multiplier import multipliers


def planned_tokens(cell: dict, epochs: float) -> float:
    """Training tokens a cell will use (mixture tokens x epochs), known before anything trains."""
    return METHODS[cell["method"]].mixture_tokens(cell["task_tokens"], cell["ratio"]) * epochs


def _candidates(cfg: Config) -> list[dict]:
    s = cfg.sweep
    cells, seen = [], set()
    order = sorted(s.methods, key=lambda m: m != "tell")
    mixed_scales = set(s.task_tokens if s.mixed_task_tokens is None else s.mixed_task_tokens)
    for seed in s.seeds:  # seeds outermost: an early stop still leaves whole grids for the first seeds
        for tokens in s.task_tokens:
            for ratio in sorted(s.ratios):  # tell at ratio 0 comes before sft+anchor, which reuses it
                for method in order:
                    if METHODS[method].by_ratio and tokens not in mixed_scales:
                        continue  # a ratio method at a scale only the ratio-free ones run at
                    r = 0.0 if METHODS[method].ratio_free else float(ratio)
                    key = (method, int(tokens), r, seed)
                    if key not in seen and (METHODS[method].task or r > 0):  # no task data: ratio 0 is nothing
                        seen.add(key)
                        cells.append({"method": method, "task_tokens": int(tokens), "ratio": r, "seed": seed})
    return cells


def _fits(cfg: Config, cell: dict) -> bool:
    cap = cfg.sweep.max_train_tokens
    return cap is None or planned_tokens(cell, cfg.train.epochs) <= cap


def grid(cfg: Config) -> list[dict]:
    """Every cell once, in run order (tell before its sft-matched twin), within sweep.max_train_tokens.

    general-only uses no task data, so it depends only on its general tokens: it runs once per seed, at
    the largest general volume (ratio x task tokens) that fits. base is evaluated once."""
    fitting = [c for c in _candidates(cfg) if _fits(cfg, c)]
    cells = [c for c in fitting if METHODS[c["method"]].trains and METHODS[c["method"]].task]
    for seed in cfg.sweep.seeds:
        general = [c for c in fitting if _general_only(c) and c["seed"] == seed]
        if general:
            cells.append(max(general, key=lambda c: (c["ratio"] * c["task_tokens"], -c["task_tokens"])))
    return cells


def _general_only(cell: dict) -> bool:
    """Trains on general data alone: its cell depends on the general volume only, not on the scale."""
    method = METHODS[cell["method"]]
    return method.trains and not method.task


def over_budget(cfg: Config) -> list[dict]:
    """Cells left out because they would train on more than sweep.max_train_tokens."""
    return [c for c in _candidates(cfg) if not _fits(cfg, c)]


def cell_name(cell: dict) -> str:
    return f"{cell['method']}-t{cell['task_tokens']}-r{cell['ratio']:g}-s{cell['seed']}"


def plan_sweep(cfg: Config, out: Path, prepared) -> Plan:
    """The sweep's plan: grid() as cells (sft-matched depends on its TELL cell, sft+anchor reuses tell
    at ratio 0), base once, and the cells sweep.max_train_tokens leaves out (those are not checked)."""
    fitting = grid(cfg)
    names = {cell_name(c) for c in fitting}
    cells = []
    for c in fitting:
        name, twin = cell_name(c), cell_name({**c, "method": "tell"})
        cells.append(Cell(name=name, method=c["method"], seed=c["seed"], ratio=c["ratio"],
                          task_tokens=c["task_tokens"], run_dir=f"cells/{name}",
                          depends_on=twin if METHODS[c["method"]].matched else None))
        if METHODS[c["method"]].tell_at_ratio_0 and twin in names:  # tell at ratio 0: the same mixture
            cells[-1].reuses, cells[-1].run_dir = twin, f"cells/{twin}"
    # base: evaluated once; always there when general ability is measured (the reference of that axis)
    untrained = [*cfg.sweep.methods, *(["base"] if cfg.eval.general_tasks else [])]
    cells += [Cell(name=m, method=m, seed=None, run_dir=m) for m in dict.fromkeys(untrained) if not METHODS[m].trains]
    left_out = [{"name": cell_name(c), "reason": f"over sweep.max_train_tokens "
                 f"({planned_tokens(c, cfg.train.epochs):,.0f} training tokens planned)"} for c in over_budget(cfg)]
    general = {str(c["seed"]): cell_name(c) for c in fitting if _general_only(c)}
    return make_plan("sweep", cfg, out, cells, prepared, hint=SWEEP_HINT, left_out=left_out,
                     notes={"general_only": general, "max_train_tokens": cfg.sweep.max_train_tokens,
                            "mixed_task_tokens": cfg.sweep.mixed_task_tokens})


SWEEP_HINT = ("drop {ratio:g} from sweep.ratios or lower sweep.task_tokens (or leave the cell out with "
              "sweep.max_train_tokens), add general data, or allow reuse with mix.allow_general_repeats=true")


def sweep(cfg: Config, out: Path | None = None, *, workers: int = 1, ray: str | None = None, cell_cpus: int = 1,
          only: list[str] | None = None, replan: bool = False) -> dict:
    """Plan the grid, run the cells not done yet (`only`: a part of them), and summarise once all are done.

    Returns the summary; with cells still missing (a part run with `only`), {"partial": True, ...}."""
    out = Path(out or cfg.output.dir)
    require_tell(list(cfg.sweep.methods), "sweep.methods")
    chosen = cfg.sweep.score
    if chosen and chosen.split("/")[0] not in cfg.eval.metrics:
        raise ConfigError(f"sweep.score {chosen!r} needs metric {chosen.split('/')[0]!r} in eval.metrics "
                          f"(now {list(cfg.eval.metrics)})")
    if over_budget(cfg) and not grid(cfg):  # nothing would train: say so instead of planning zero cells
        smallest = min(over_budget(cfg), key=lambda c: planned_tokens(c, cfg.train.epochs))
        raise ConfigError(f"sweep.max_train_tokens={cfg.sweep.max_train_tokens:,} leaves out every cell of the sweep "
                          f"(the smallest, {cell_name(smallest)}, plans "
                          f"{planned_tokens(smallest, cfg.train.epochs):,.0f} training tokens); raise it or remove it")
    check_execution(workers=workers, ray=ray, cell_cpus=cell_cpus)  # before anything is planned or written
    require_plan_folder(out, "sweep")
    start = time.perf_counter()
    prepared = prepare(cfg)
    plan = plan_sweep(cfg, out, prepared)  # every cell checked buildable before any trains
    names = select(plan, only)
    store(plan, replan=replan)
    execute(plan, names, workers=workers, ray=ray, cell_cpus=cell_cpus, prepared=prepared)
    missing = [c.name for c in plan.cells if not is_done(plan, c)]
    if missing:
        return {"partial": True, "cells_planned": len(plan.cells), "cells_done": len(plan.cells) - len(missing),
                "missing": missing}
    return summarise(plan, total_seconds=time.perf_counter() - start)


def summarise(plan: Plan, total_seconds: float | None = None) -> dict:
    """sweep.json, sweep.csv and the report from the cells done so far (all of them after a sweep;
    `tellkit report SWEEP_DIR` calls this at any time for partial results)."""
    cfg, out = plan.base_config(), plan.folder
    done = [c for c in plan.cells if is_done(plan, c)]
    results = [{"method": c.method, "task_tokens": c.task_tokens, "ratio": c.ratio, "seed": c.seed,
                **{k: v for k, v in result(plan, c).items() if k in ("metrics", "cost", "fingerprint")},
                "run_dir": c.run_dir}  # relative to the sweep folder
               for c in done if METHODS[c.method].trains]
    for c in done:
        if not METHODS[c.method].trains:
            base = result(plan, c)
            results += [{**base, "task_tokens": int(t), "ratio": 0.0, "seed": seed}
                        for seed in cfg.sweep.seeds for t in cfg.sweep.task_tokens]
    if not results:
        raise TellkitError(f"{out}: no cell of this sweep has finished yet; rerun `tellkit sweep` to run them")
    rows = flat_rows(results)
    score = primary_score(rows, cfg.sweep.score)
    scored = curves(results, score)
    summary = {
        "cells": len(results), "cells_planned": len(plan.cells), "cells_done": len(done),
        "partial": len(done) < len(plan.cells),
        "total_seconds": round(total_seconds, 1) if total_seconds is not None else None,
        # per run folder: sft+anchor reuses tell's ratio-0 run and base rows share one evaluation
        "sum_of_cell_seconds": round(sum({r["run_dir"]: r["cost"].get("wall_seconds") or 0
                                          for r in results}.values()), 1),
        "primary_score": score, "curves": scored, "multiplier": multipliers(scored, results, score),
        "over_budget": [c["name"] for c in plan.left_out], "max_train_tokens": cfg.sweep.max_train_tokens,
        "assumptions": assumptions(cfg), "anchor": anchor_text(cfg.anchor),
        # the second axis: general ability out of distribution per cell, its change from base and the
        # forgetting budget (compare.max_general_drop, drawn on the Pareto plots)
        "general": sweep_judge(results, score, cfg.eval.general_score, cfg.compare.max_general_drop),
    }
    write_json_atomic(out / "sweep.json", {"summary": summary, "rows": rows})
    write_text_atomic(out / "sweep.csv", to_csv(rows))
    from ..report.sweep_report import write_sweep_report

    write_sweep_report(summary, rows, cfg, out)
    return summary


def flat_rows(results: list[dict]) -> list[dict]:
    rows = []
    for r in results:
        row = {k: r[k] for k in ("method", "task_tokens", "ratio", "seed")}
        row["fingerprint"] = r.get("fingerprint")  # the mixture this cell trained on (sha256 of mixture.jsonl)
        row["run_dir"] = r.get("run_dir")  # relative to the sweep folder (its loss log, its adapter)
        row["actual_task_tokens"] = r["cost"].get("unique_task_tokens")
        for metric, res in r["metrics"].items():
            for name, v in res["scores"].items():
                row[f"{metric}/{name}"] = v["value"]
        row.update({k: r["cost"].get(k) for k in ("train_tokens", "optimizer_steps", "wall_seconds")})
        rows.append(row)
    return rows


def primary_score(rows: list[dict], chosen: str | None = None) -> str:
    keys = {k for r in rows for k in r if "/" in k}
    if chosen:
        if chosen not in keys:
            raise ConfigError(f"sweep.score {chosen!r} is not a score of this sweep; choose one of {sorted(keys)}")
        return chosen
    return next((k for k in HEADLINE_ORDER if k in keys), sorted(keys)[0] if keys else "")


def curves(results: list[dict], score: str) -> dict:
    """{method: {task_tokens: [{"x": ratio, mean, ci_low, ci_high, n, interval}]}} over seeds.

    Each point pools its seeds' metric results (metrics.pooled): a bootstrap over test items
    x seeds where the results keep per-item rows, Wilson otherwise for a bounded score, so a
    proportion's band stays inside [0, 1]; "interval" names the one used."""
    out: dict = {}
    for r in results:
        out.setdefault(r["method"], {}).setdefault(r["task_tokens"], {}).setdefault(r["ratio"], []).append(r["metrics"])
    return {m: {t: [{"x": x, **pooled.over_seeds(score, seeds)} for x, seeds in sorted(by_ratio.items())]
                for t, by_ratio in by_t.items()}
            for m, by_t in out.items()}


def to_csv(rows: list[dict]) -> str:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
