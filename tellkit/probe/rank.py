"""Rank anchor candidates by how far they pull task queries away from general queries.

For every candidate, the task queries carrying it are embedded with the BASE
model (no training) and compared with general queries by `separation_metrics`,
using the probe's hidden-state extraction (`tellkit.probe.probe`: same layer,
pooling, query rendering and query samples). The general-query states do not
depend on the anchor and are computed once.

Ranking key: probe accuracy, then centroid cosine distance, then silhouette
(all higher is better; NaN counts as worst). Probe accuracy comes first because
it is what a downstream layer could exploit; on distinctive tasks it often
saturates at 1.0 and the geometric margins decide.

This is a cheap proxy, not a training result: it says which anchor the untrained
model already reads as "different from general data" (the paper's middle-layer
picture), not which one trains best.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from ..config import Config
from ..errors import TellkitError
from ..io import write_json_atomic
from .probe import (
    general_examples,
    hidden_states,
    load_on_device,
    num_layers,
    query_prompts,
    resolve_layer,
    task_examples,
)
from .separation import separation_metrics

KEY_METRICS = ("probe_accuracy", "centroid_cosine_distance", "silhouette")


def rank_key(row: dict) -> tuple[float, ...]:
    """Sort key (descending = best first): probe accuracy, then centroid distance, then silhouette."""
    def value(k: str) -> float:
        v = row.get(k)
        return -math.inf if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)

    return tuple(value(k) for k in KEY_METRICS)


def sort_ranked(rows: list[dict]) -> list[dict]:
    """Rows sorted best first (stable: equal keys keep the input order), each with a 1-based "rank"."""
    ordered = sorted(rows, key=rank_key, reverse=True)
    return [{**row, "rank": i} for i, row in enumerate(ordered, 1)]


def _clean_candidates(anchors: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for a in anchors:
        a = str(a).strip()
        if a and a not in seen:
            seen[a] = None
    if not seen:
        raise TellkitError("no anchor candidates to rank (the list is empty or holds only blank lines)")
    return list(seen)


def rank_anchors(cfg: Config, anchors: list[str], out_dir: str | Path | None = None) -> list[dict]:
    """Score each candidate anchor on the base model; returns rows sorted best first.

    Each row: {"anchor", centroid_cosine_distance, silhouette, probe_accuracy,
    probe_accuracy_std, probe_folds, n_task, n_general, "rank"}. Writes
    anchors_ranked.json and anchors_ranked.md/html to `out_dir` (default
    ``<output.dir>/anchors``), including a no-anchor reference row.
    """
    t_start = time.perf_counter()
    candidates = _clean_candidates(anchors)
    pc, seed = cfg.probe, cfg.mix.seed
    task = task_examples(cfg, pc.n_queries)
    general = general_examples(cfg, pc.n_queries, seed)
    model, tok, ref = load_on_device(cfg)
    n_layers = num_layers(model)
    layer = resolve_layer(pc.layer, n_layers)

    def states(examples: list[dict], anchor: str | None = None) -> np.ndarray:
        prompts = query_prompts(tok, examples, anchor, cfg.anchor.position, cfg.anchor.separator)
        return hidden_states(model, tok, prompts, layer, pc.pooling, pc.batch_size)

    general_states = states(general)  # anchor-independent: once
    y = np.r_[np.ones(len(task), int), np.zeros(len(general), int)]

    def score(task_states: np.ndarray) -> dict:
        return separation_metrics(np.vstack([task_states, general_states]), y, seed=seed)

    rows = [{"anchor": a, **score(states(task, a))} for a in candidates]
    ranked = sort_ranked(rows)
    report = {
        "model_ref": ref, "layer": layer, "layer_spec": pc.layer, "n_layers": n_layers, "pooling": pc.pooling,
        "anchor_position": cfg.anchor.position, "n_queries": {"task": len(task), "general": len(general)},
        "seed": seed, "ranked": ranked, "no_anchor": score(states(task)),
        "seconds": round(time.perf_counter() - t_start, 2),
    }
    out = Path(out_dir) if out_dir is not None else Path(cfg.output.dir) / "anchors"
    from ..report.probe_report import write_rank_report

    write_json_atomic(out / "anchors_ranked.json", report)
    write_rank_report(report, out)
    return ranked
