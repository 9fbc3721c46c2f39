"""The TELL mixture: anchored task data shuffled into general data at a token ratio.

Only row indices live in memory (a few bytes per example); the token counts
come from the memory-mapped tokenized data. So the selection and the shuffle
are exact and uniform (numpy's PCG64 permutation of all indices) even when
the general corpus is far larger than RAM.

ratio = general tokens : task tokens, counted with the model's tokenizer after
templating, anchoring and truncation to max_length (what the model trains on).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from datasets import Dataset, concatenate_datasets

from ..config.schema import MixConfig
from ..errors import DataError
from ..io import atomic_paths, write_json
from ..methods import METHODS

TASK, GENERAL = 0, 1
SOURCES = ("task", "general")


@dataclass
class Mixture:
    task: Dataset
    general: Dataset | None
    order: np.ndarray  # (n, 2) int64 rows of (source, row index), in training order
    report: dict = field(default_factory=dict)
    dev_rows: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64))  # task rows held out

    def dataset(self) -> Dataset:
        """The training examples in mixture order (an index map over the memory-mapped data)."""
        parts = [self.task] + ([self.general] if self.general is not None else [])
        offset = np.array([0, len(self.task)], dtype=np.int64)
        rows = offset[self.order[:, 0]] + self.order[:, 1]
        return concatenate_datasets(parts).select(rows)

    def write(self, out_dir: Path) -> str:
        """Write mixture.jsonl and mixture.json; return the sha256 fingerprint of the ordered contents."""
        out_dir.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha256()
        # one write for the pair: mixture.json (the record) is replaced last, so a crash never leaves an
        # old mixture.json describing a new mixture.jsonl
        with atomic_paths(out_dir / "mixture.jsonl", out_dir / "mixture.json") as (tmp, tmp_report):
            with open(tmp, "w", encoding="utf-8") as f:
                self._write_rows(f, h)
            self.report["fingerprint"] = h.hexdigest()
            write_json(tmp_report, self.report)
        return self.report["fingerprint"]

    def _write_rows(self, f, h) -> None:
        rows = self.dataset().select_columns(["id", "n_tokens", "n_supervised", "messages"])
        sources = iter(self.order[:, 0])
        for batch in rows.iter(batch_size=1024):  # batched reads; input_ids/labels pages are never touched
            for rid, n, n_sup, messages in zip(batch["id"], batch["n_tokens"], batch["n_supervised"],
                                               batch["messages"]):
                line = json.dumps({"id": rid, "source": SOURCES[next(sources)], "n_tokens": n,
                                   "n_supervised": n_sup, "messages": json.loads(messages)},
                                  ensure_ascii=False) + "\n"
                h.update(line.encode("utf-8"))
                f.write(line)


def build_mixture(task: Dataset | None, general: Dataset | None, cfg: MixConfig, *,
                  token_budget: int | None = None, match_tokens: int | None = None,
                  budget_lengths: np.ndarray | None = None, dev_fraction: float = 0.0) -> Mixture:
    """Select and shuffle. `match_tokens` (sft-matched) repeats task data up to that many tokens.

    `budget_lengths` (the anchored token counts) makes the token-budget subset the same examples for
    methods with and without the anchor, so their comparison is on the same task data."""
    rng = np.random.default_rng(cfg.seed)
    method = METHODS[cfg.method]
    task_tok = _column(task, "n_tokens")
    task_sup = _column(task, "n_supervised")
    usable = np.flatnonzero(task_sup > 0) if task is not None else np.array([], dtype=np.int64)
    if task is not None and usable.size == 0:
        raise DataError("no task example has a target left after truncation; raise train.max_length")
    dev_rows = np.array([], dtype=np.int64)
    if dev_fraction > 0 and task is not None:  # drawn first, so every method of a seed holds out the same rows
        shuffled = usable[rng.permutation(len(usable))]
        n_dev = max(1, round(dev_fraction * len(usable)))
        if n_dev >= len(usable):
            raise DataError(f"eval.dev_fraction={dev_fraction} leaves no task data to train on; lower it")
        dev_rows, usable = np.sort(shuffled[:n_dev]), np.sort(shuffled[n_dev:])
    lengths = task_tok if budget_lengths is None else np.asarray(budget_lengths, dtype=np.int64)
    task_rows = _budget(usable, lengths, token_budget, rng) if task is not None else usable
    task_tokens = int(task_tok[task_rows].sum()) * cfg.task_repeats if task is not None else 0

    picked_task = np.tile(task_rows, cfg.task_repeats)
    if method.matched:
        if not match_tokens:
            raise DataError(f"method {method.name} needs the token count of the run it matches (match_tokens)")
        picked_task = _repeat_to(task_rows, task_tok, match_tokens, rng)
    if not method.task:
        picked_task = np.array([], dtype=np.int64)

    picked_general = np.array([], dtype=np.int64)
    repeat_factor = 0.0
    if method.general and cfg.ratio > 0:
        picked_general, repeat_factor = _fill_general(general, cfg, cfg.ratio * task_tokens, rng)

    order = np.concatenate([np.stack([np.full(len(picked_task), TASK), picked_task], 1),
                            np.stack([np.full(len(picked_general), GENERAL), picked_general], 1)]).astype(np.int64)
    order = order[rng.permutation(len(order))]  # the "extensive shuffle": one uniform permutation

    report = _report(cfg, order, task, general, task_tokens, token_budget, repeat_factor,
                     n_dropped=int((task_sup == 0).sum()) if task is not None else 0)
    report["dev_examples"] = int(len(dev_rows))
    return Mixture(task=task, general=general, order=order, report=report, dev_rows=dev_rows)


def _column(ds: Dataset | None, name: str) -> np.ndarray:
    if ds is None:
        return np.array([], dtype=np.int64)
    return ds.data.column(name).to_numpy().astype(np.int64)


def _budget(rows: np.ndarray, tokens: np.ndarray, budget: int | None, rng) -> np.ndarray:
    """A seeded subset of task rows whose tokens add up to at most `budget` (at least one example)."""
    if budget is None:
        return rows
    shuffled = rows[rng.permutation(len(rows))]
    keep, total = [], 0
    for r in shuffled:
        if total + tokens[r] <= budget:
            keep.append(r)
            total += tokens[r]
    if not keep:
        keep = [shuffled[np.argmin(tokens[shuffled])]]
    return np.sort(np.array(keep, dtype=np.int64))


def _repeat_to(rows: np.ndarray, tokens: np.ndarray, target: int, rng) -> np.ndarray:
    """Whole passes over the task rows, then a seeded partial pass, until `target` tokens."""
    per_pass = int(tokens[rows].sum())
    full = int(target // per_pass)
    picked = [np.tile(rows, full)]
    total = full * per_pass
    for r in rows[rng.permutation(len(rows))]:
        if total >= target or abs(total + tokens[r] - target) > abs(total - target):
            break
        picked.append(np.array([r]))
        total += tokens[r]
    return np.concatenate(picked).astype(np.int64)


def _fill_general(general: Dataset | None, cfg: MixConfig, target: float, rng) -> tuple[np.ndarray, float]:
    """Draw general examples without replacement until the token target is met within tolerance."""
    if general is None or len(general) == 0:
        raise DataError("method tell needs general data, but the general set is empty")
    tokens = _column(general, "n_tokens")
    available = int(tokens.sum())
    if available < target * (1 - cfg.tolerance) and not cfg.allow_general_repeats:
        missing = int(target - available)
        raise DataError(
            f"mix.ratio={cfg.ratio:g} needs {int(target):,} general tokens but the general data has "
            f"{available:,} ({missing:,} missing); lower mix.ratio, add general data, "
            "or allow reuse with mix.allow_general_repeats=true")
    low, high = target * (1 - cfg.tolerance / 2), target * (1 + cfg.tolerance / 2)
    picked, total, passes = [], 0, 0
    while total < low:
        passes += 1
        before = total
        for r in rng.permutation(len(tokens)):
            if total + tokens[r] <= high:  # skip an example that would overshoot; a later, shorter one fits
                picked.append(r)
                total += tokens[r]
                if total >= low:
                    break
        if not cfg.allow_general_repeats or total == before:  # no repeats allowed, or nothing fits
            break
    picked = np.array(picked, dtype=np.int64)
    return picked, len(picked) / len(tokens)


def _report(cfg: MixConfig, order, task, general, task_tokens, token_budget, repeat_factor, n_dropped) -> dict:
    def totals(src: int, ds: Dataset | None) -> dict:
        rows = order[order[:, 0] == src, 1]
        return {"examples": int(len(rows)), "unique_examples": int(len(np.unique(rows))),
                "tokens": int(_column(ds, "n_tokens")[rows].sum()) if len(rows) else 0,
                "supervised_tokens": int(_column(ds, "n_supervised")[rows].sum()) if len(rows) else 0}

    t, g = totals(TASK, task), totals(GENERAL, general)
    achieved = g["tokens"] / task_tokens if task_tokens else None
    requested = cfg.ratio if METHODS[cfg.method].general else 0.0
    within = achieved is not None and requested > 0 and abs(achieved - requested) <= cfg.tolerance * requested
    return {
        "method": cfg.method, "seed": cfg.seed, "ratio_unit": "tokens (general : task, after template+anchor)",
        "requested_ratio": requested, "achieved_ratio": achieved,
        "ratio_within_tolerance": within if requested > 0 else None,
        "task_tokens_reference": task_tokens, "task_token_budget": token_budget,
        "task_repeats": cfg.task_repeats, "general_repeat_factor": round(repeat_factor, 4),
        "task_examples_dropped_no_target": n_dropped,
        "task": t, "general": g,
        "total": {k: t[k] + g[k] for k in ("examples", "tokens", "supervised_tokens")},
    }
