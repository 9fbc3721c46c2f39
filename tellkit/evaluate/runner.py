"""`tellkit eval`: generate on the task's test split and score, for a run or for the base model.

A run's own anchor (recorded in run.json) is applied to the test queries, so
evaluation sees the task the way training did; the base model and SFT runs
get no anchor.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
from torch.nn.utils.rnn import pad_sequence

from .. import metrics as metric_registry
from ..config import Config
from ..data.anchor import apply_anchor
from ..data.formats import to_examples
from ..data.readers import read_records
from ..data.tokenize import IGNORE, encode, encode_prompt
from ..errors import ConfigError
from ..generation.generate import generate, generated_tokens
from ..generation.vllm_backend import generate_vllm, require_vllm
from ..io import write_json_atomic, write_text_atomic
from ..metrics import general as general_metric
from ..runs.loader import load_model, load_tokenizer, model_ref
from ..runs.source import read_run
from ..track import log_final_scores
from ..train.loss import fuse_head, linear_cross_entropy, unfuse_head
from ..train.precision import eval_bf16

MODEL_METRICS = ("general",)  # metrics computed from the model itself, not from generated text


def evaluate_run(run_dir: str | Path, *, cfg: Config | None = None, limit: int | None = None,
                 overrides: list[str] | None = None) -> dict:
    """Evaluate a finished run folder (adapter + the anchor it was trained with).

    Eval settings come from `cfg` when given, else from the run's own config.yaml."""
    run = read_run(run_dir, cfg=cfg, overrides=overrides)
    result = evaluate(run.cfg, adapter=run.adapter, anchor=run.anchor, out_dir=run.path / "eval", limit=limit)
    log_final_scores(run.path, run.cfg, result)  # into the trackers of train.report_to, if any
    return result


def evaluate_base(cfg: Config, out_dir: Path, *, limit: int | None = None) -> dict:
    """Evaluate the untrained base model (no adapter, no anchor)."""
    return evaluate(cfg, adapter=None, anchor=None, out_dir=out_dir, limit=limit)


def evaluate(cfg: Config, *, adapter: Path | None, anchor: str | None, out_dir: Path,
             limit: int | None = None) -> dict:
    if not cfg.task.test_path:
        raise ConfigError("task.test_path is not set: evaluation needs a test split")
    names = list(cfg.eval.metrics)
    text_metrics = [m for m in names if m not in MODEL_METRICS]
    unknown = set(text_metrics) - set(metric_registry.available())
    if unknown:
        metric_registry.compute(sorted(unknown), [], [])  # raises the registry's own "unknown metric" error
    examples = list(to_examples(read_records(cfg.task.test_path), cfg.task.format, cfg.task.columns,
                                id_prefix="test"))[: limit or cfg.eval.limit]
    vllm = cfg.eval.backend == "vllm"
    if vllm:
        require_vllm()  # before any weights load
    model, tok = (None, load_tokenizer(cfg)) if vllm else load_model(cfg, adapter)
    prompts = [encode_prompt(tok, apply_anchor(ex["messages"], anchor, cfg.anchor.position, cfg.anchor.separator))
               for ex in examples]
    golds = [ex["messages"][-1]["content"] for ex in examples]
    bf16 = eval_bf16(cfg.eval.bf16, cfg.train.bf16)
    start = time.perf_counter()
    if vllm:
        outputs = generate_vllm(model_ref(cfg), tok, prompts, max_new_tokens=cfg.eval.max_new_tokens, adapter=adapter,
                                do_sample=cfg.eval.do_sample, temperature=cfg.eval.temperature, seed=cfg.train.seed,
                                dtype=cfg.model.dtype, trust_remote_code=cfg.model.trust_remote_code)
    else:
        outputs = generate(model, tok, prompts, max_new_tokens=cfg.eval.max_new_tokens,
                           batch_size=cfg.eval.batch_size, max_batch=cfg.eval.max_batch,
                           stop_at_json=cfg.eval.stop_at_json, do_sample=cfg.eval.do_sample,
                           temperature=cfg.eval.temperature, bf16=bf16, seed=cfg.train.seed)
    seconds = time.perf_counter() - start
    n_gen = generated_tokens(tok, outputs)
    options = metric_registry.options_from(cfg.eval)
    scores = metric_registry.compute(text_metrics, outputs, golds, options, seed=cfg.train.seed) if text_metrics else {}
    if "general" in names:
        scores["general"] = general_loss(cfg, model if model is not None else load_model(cfg, adapter)[0], tok)

    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / "predictions.jsonl", "".join(
        json.dumps({"id": ex["id"], "query": ex["messages"][-2]["content"] if len(ex["messages"]) > 1 else "",
                    "gold": g, "output": o}, ensure_ascii=False) + "\n" for ex, g, o in zip(examples, golds, outputs)))
    result = {"n": len(examples), "anchor": anchor, "adapter": str(adapter) if adapter else None,
              "metrics": scores, "generation": {"seconds": round(seconds, 2), "generated_tokens": n_gen,
                                                "tokens_per_second": round(n_gen / seconds, 1) if seconds else None,
                                                "batch_size": cfg.eval.batch_size, "bf16": bf16,
                                                "backend": cfg.eval.backend, "stop_at_json": cfg.eval.stop_at_json}}
    write_json_atomic(out_dir / "scores.json", result)
    return result


def general_loss(cfg: Config, model, tok, limit: int = 200) -> dict:
    """Mean assistant-token loss and perplexity on held-out general data: what a method costs in general ability.

    The per-example losses go into the result's ``items``, so comparisons bootstrap over the same
    held-out examples, paired between methods."""
    if not (cfg.general and cfg.general.heldout_path):
        raise ConfigError("metric 'general' needs general.heldout_path (held-out general instruction data)")
    examples = list(to_examples(read_records(cfg.general.heldout_path), "auto", {}, id_prefix="heldout"))[:limit]
    encoded = [encode(tok, ex["messages"], cfg.train.max_length) for ex in examples]
    encoded = [e for e in encoded if e["n_supervised"] > 0]
    per_example = supervised_losses(model, encoded, tok.pad_token_id, cfg.eval.batch_size)
    return general_metric.loss_result(per_example, cfg.train.seed)


def supervised_losses(model, encoded: list[dict], pad_id: int, batch_size: int) -> list[float]:
    """Each example's mean cross-entropy over its supervised tokens, in the order given.

    Two things keep this cheap without changing the numbers: batches are formed shortest first, so
    they pad to similar lengths, and the output head (SmolLM2: a 49,152-wide projection, most of the
    compute over a whole sequence) runs only on the positions whose next token is supervised, fused
    with the loss (train.loss, which falls back to the model's own logits when its head does more
    than a projection). The model is frozen: this is evaluation, and a frozen head is what fuses."""
    model.eval().requires_grad_(False)
    order = sorted(range(len(encoded)), key=lambda i: encoded[i]["n_tokens"])
    losses = [math.nan] * len(encoded)
    head = fuse_head(model)  # the model now returns its final hidden states instead of logits
    try:
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                rows = order[start: start + batch_size]
                ids, labels, mask = (t.to(model.device) for t in _padded([encoded[i] for i in rows], pad_id))
                targets = labels[:, 1:]  # position t predicts token t + 1
                picked = targets != IGNORE
                out = model(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, :-1][picked]
                token_loss = _cross_entropy(out, targets[picked], head)
                sums = torch.zeros(len(rows), device=ids.device).index_add_(0, picked.nonzero()[:, 0], token_loss)
                for i, loss in zip(rows, (sums / picked.sum(1)).tolist()):
                    losses[i] = loss
    finally:
        unfuse_head(model, head)
    return losses


def _cross_entropy(out: torch.Tensor, targets: torch.Tensor, head) -> torch.Tensor:
    """Per-position loss in fp32; `out` holds hidden states when the head is fused, logits otherwise."""
    if head is not None:
        return linear_cross_entropy(out, head.weight, targets)
    return torch.nn.functional.cross_entropy(out.float(), targets, reduction="none")


def _padded(examples: list[dict], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """input_ids, labels and attention mask, right-padded to the longest example."""
    def pad(key: str, value: int) -> torch.Tensor:
        return pad_sequence([torch.tensor(e[key]) for e in examples], batch_first=True, padding_value=value)

    mask = pad_sequence([torch.ones(len(e["input_ids"]), dtype=torch.long) for e in examples], batch_first=True)
    return pad("input_ids", pad_id), pad("labels", IGNORE), mask
