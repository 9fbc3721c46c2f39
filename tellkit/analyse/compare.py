"""`tellkit compare`: TELL against its baselines, same settings, several seeds, full cost accounting.

Methods (compare.methods):
  tell          anchored task data + ratio x general tokens
  sft           the same task data alone (no anchor), same epochs: fewer steps than TELL
  sft+anchor    the same, with the anchor
  sft-matched   task data repeated (whole passes + a seeded partial pass) to the TELL run's
                training tokens, so it gets the same compute: the control for "TELL only
                wins because it trains longer"
  general-only  the TELL run's general tokens, no task data
  base          the untrained model (no adapter, no anchor)

Each cell is a normal run folder (out/<method>-s<seed>/); finished cells are
reused, so an interrupted compare resumes where it stopped.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..api import prepare, train
from ..config import Config
from ..errors import ConfigError
from ..evaluate.bootstrap import difference_ci, mean_ci_over_seeds
from ..evaluate.runner import evaluate_base, evaluate_run
from ..io import write_json_atomic
from ..rundir import RunDir
from ..validate import validate

MATCHED = {"sft-matched": "same training tokens and steps as tell (task data repeated)",
           "general-only": "same general tokens as tell, no task data"}


def cell_config(cfg: Config, out_dir: Path, method: str, seed: int, *, ratio: float | None = None,
                token_budget: int | None = None, max_steps: int | None = None) -> Config:
    """One cell of a comparison or sweep: the user's config with method, seed (mixture and training),
    and optionally ratio, task token budget and a step count changed."""
    c = cfg.model_copy(deep=True)
    c.mix.method, c.mix.seed, c.train.seed = method, seed, seed
    if ratio is not None:
        c.mix.ratio = ratio
    if token_budget is not None:
        c.task.token_budget = token_budget
    if max_steps:
        c.train.max_steps = max_steps
    c.output.dir = str(out_dir)
    return c


def run_cell(c: Config, prepared, match_tokens: int | None = None) -> dict:
    """Train (unless finished; an interrupted cell resumes, a failed one restarts) and evaluate one cell.

    `match_tokens` (sft-matched): the task data is repeated to that many tokens (the TELL cell's)."""
    run = RunDir(c.output.dir)
    if not run.is_complete():
        failed = (run.state() or {}).get("status") == "failed"
        train(c, overwrite=failed, prepared=prepared, match_tokens=match_tokens)
    scores_file = run.path / "eval" / "scores.json"
    scores = json.loads(scores_file.read_text()) if scores_file.exists() else evaluate_run(run.path, cfg=c)
    return {"method": c.mix.method, "seed": c.mix.seed, "ratio": c.mix.ratio, "token_budget": c.task.token_budget,
            "run_dir": str(run.path), "metrics": scores["metrics"], "cost": cost(run.state()),
            "samples": _samples(run.path / "eval" / "predictions.jsonl")}


def base_cell(cfg: Config, base_dir: Path) -> dict:
    """The untrained model, evaluated once (greedy decoding does not depend on the seed)."""
    scores_file = base_dir / "scores.json"
    scores = json.loads(scores_file.read_text()) if scores_file.exists() else evaluate_base(cfg, base_dir)
    return {"method": "base", "run_dir": str(base_dir), "metrics": scores["metrics"],
            "cost": {"task_tokens": 0, "train_tokens": 0, "optimizer_steps": 0},
            "samples": _samples(base_dir / "predictions.jsonl")}


def matched_cell(cfg: Config, out_dir: Path, tell_cell: dict, **changes) -> tuple[Config, int]:
    """The sft-matched twin of a TELL cell: same optimizer steps, task data repeated to TELL's tokens."""
    c = cell_config(cfg, out_dir, "sft-matched", tell_cell["seed"], max_steps=tell_cell["cost"]["optimizer_steps"],
                    **changes)
    return c, tell_cell["cost"]["train_tokens"] // max(round(cfg.train.epochs), 1)


def cost(state: dict) -> dict:
    m, t = state["mixture"], state["train"]
    unique_task = m["task_tokens_reference"] / max(m["task_repeats"], 1)
    return {"task_tokens": m["task"]["tokens"], "unique_task_tokens": int(unique_task),
            "general_tokens": m["general"]["tokens"], "train_tokens": t["train_tokens"],
            "optimizer_steps": t["optimizer_steps"],
            "task_epochs": round(m["task"]["tokens"] * (t["train_tokens"] / max(m["total"]["tokens"], 1))
                                 / unique_task, 2) if unique_task else 0.0,
            "wall_seconds": t["wall_seconds"], "tokens_per_second": t["tokens_per_second"]}


def compare(cfg: Config, out: Path | None = None) -> dict:
    out = Path(out or cfg.output.dir)
    prepared = prepare(cfg)
    validate(cfg, check_output=False, prepared=prepared)  # bad data/metrics/ratio fail before any cell trains
    methods = list(cfg.compare.methods)
    cells: list[dict] = []
    if "sft-matched" in methods and "tell" not in methods:
        raise ConfigError("compare.methods has sft-matched but not tell: sft-matched copies tell's compute")
    for seed in cfg.compare.seeds:
        tell = None
        for method in sorted((m for m in methods if m != "base"), key=lambda m: m != "tell"):  # tell first
            if method == "sft-matched":
                c, match_tokens = matched_cell(cfg, out / f"{method}-s{seed}", tell)
                cells.append(run_cell(c, prepared, match_tokens))
                continue
            cells.append(run_cell(cell_config(cfg, out / f"{method}-s{seed}", method, seed), prepared))
            tell = cells[-1] if method == "tell" else tell
    if "base" in methods:
        base = base_cell(cfg, out / "base")
        cells += [{**base, "seed": seed} for seed in cfg.compare.seeds]  # greedy: the same score for every seed
    result = {"methods": methods, "seeds": list(cfg.compare.seeds), "cells": cells,
              "summary": summarise(cells, methods), "differences": differences(cells),
              "matched": MATCHED, "assumptions": assumptions(cfg), "config": cfg.model_dump(mode="json")}
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


def summarise(cells: list[dict], methods: list[str]) -> dict:
    out = {}
    for method in methods:
        costs = [c["cost"] for c in cells if c["method"] == method]
        out[method] = {"scores": {k: mean_ci_over_seeds(v) for k, v in score_values(cells, method).items()},
                       "cost": {k: sum(c.get(k, 0) or 0 for c in costs) / max(len(costs), 1)
                                for k in (costs[0] if costs else {})}}
    return out


def differences(cells: list[dict]) -> dict:
    """TELL minus each baseline per score, across seeds, with a verdict ("no clear difference" if the CI holds 0)."""
    tell = score_values(cells, "tell")
    out = {}
    for other in sorted({c["method"] for c in cells} - {"tell"}):
        vals = score_values(cells, other)
        out[f"tell vs {other}"] = {k: difference_ci(tell[k], vals[k], higher_is_better=not _lower_better(k))
                                   for k in tell if k in vals}
    return out


def _lower_better(score: str) -> bool:
    return score.startswith(("ter/", "general/"))


def _samples(path: Path, k: int = 3) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[:k]]


def assumptions(cfg: Config) -> list[str]:
    """Choices that fill gaps in the paper; every report prints them."""
    return [
        "ratio is counted in tokens (general:task) after chat template + anchor, with the model's tokenizer",
        f"LoRA r={cfg.lora.r}, alpha={cfg.lora.alpha}, dropout={cfg.lora.dropout}, targets={cfg.lora.target_modules}",
        f"lr={cfg.train.lr}, epochs={cfg.train.epochs}, batch={cfg.train.batch_size}x{cfg.train.grad_accum}, "
        f"max_length={cfg.train.max_length}, packing={cfg.train.packing}",
        "anchor text is ours (the paper's anchors are unpublished)",
        "sft-matched repeats the task data to TELL's training tokens (same compute)",
    ]
