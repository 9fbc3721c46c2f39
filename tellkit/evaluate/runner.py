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

import numpy as np
import torch

from ..anchor import apply_anchor
from ..config import Config, load_config
from ..data.formats import to_examples
from ..data.readers import read_records
from ..data.tokenize import encode, encode_prompt
from ..errors import ConfigError, TellkitError
from ..io import write_json_atomic, write_text_atomic
from ..models.resolve import load_model_and_tokenizer, resolve_model
from ..rundir import RunDir
from ..train.collate import collate_padded
from ..train.trainer import use_bf16
from . import metrics as metric_registry
from .bootstrap import bootstrap_ci
from .generate import generate, generated_tokens

MODEL_METRICS = ("general",)  # metrics computed from the model itself, not from generated text


def evaluate_run(run_dir: str | Path, *, cfg: Config | None = None, limit: int | None = None,
                 overrides: list[str] | None = None) -> dict:
    """Evaluate a finished run folder (adapter + the anchor it was trained with).

    Eval settings come from `cfg` when given, else from the run's own config.yaml."""
    run = RunDir(run_dir)
    state = run.require_complete()
    cfg = cfg or load_config(run.path / "config.yaml", overrides)
    return evaluate(cfg, adapter=run.path / "adapter", anchor=state.get("anchor"),
                    out_dir=run.path / "eval", limit=limit)


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
    model, tok = _load(cfg, adapter)
    prompts = [encode_prompt(tok, apply_anchor(ex["messages"], anchor, cfg.anchor.position, cfg.anchor.separator))
               for ex in examples]
    golds = [ex["messages"][-1]["content"] for ex in examples]
    bf16 = use_bf16(cfg.train.bf16)
    start = time.perf_counter()
    outputs = generate(model, tok, prompts, max_new_tokens=cfg.eval.max_new_tokens, batch_size=cfg.eval.batch_size,
                       do_sample=cfg.eval.do_sample, temperature=cfg.eval.temperature, bf16=bf16, seed=cfg.train.seed)
    seconds = time.perf_counter() - start
    n_gen = generated_tokens(tok, outputs)
    scores = metric_registry.compute(text_metrics, outputs, golds, _metric_options(cfg), seed=cfg.train.seed) \
        if text_metrics else {}
    if "general" in names:
        scores["general"] = general_loss(cfg, model, tok)

    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / "predictions.jsonl", "".join(
        json.dumps({"id": ex["id"], "query": ex["messages"][-2]["content"] if len(ex["messages"]) > 1 else "",
                    "gold": g, "output": o}, ensure_ascii=False) + "\n" for ex, g, o in zip(examples, golds, outputs)))
    result = {"n": len(examples), "anchor": anchor, "adapter": str(adapter) if adapter else None,
              "metrics": scores, "generation": {"seconds": round(seconds, 2), "generated_tokens": n_gen,
                                                "tokens_per_second": round(n_gen / seconds, 1) if seconds else None,
                                                "batch_size": cfg.eval.batch_size, "bf16": bf16}}
    write_json_atomic(out_dir / "scores.json", result)
    return result


def _load(cfg: Config, adapter: Path | None):
    ref = resolve_model(cfg.model.name, trust_remote_code=cfg.model.trust_remote_code,
                        allow_pickle=cfg.model.allow_pickle)
    model, tok = load_model_and_tokenizer(ref, dtype=cfg.model.dtype, trust_remote_code=cfg.model.trust_remote_code,
                                          allow_pickle=cfg.model.allow_pickle)
    if adapter is not None:
        from peft import PeftModel

        if not (Path(adapter) / "adapter_config.json").exists():
            raise TellkitError(f"no adapter in {adapter}; train the run first")
        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()  # merged: plain-model speed
    return model, tok


def _metric_options(cfg: Config) -> dict:
    e = cfg.eval
    options = {"label_field": e.label_field, "positive_label": e.positive_label, "json_schema": e.json_schema,
               "doc_level": e.doc_level, "max_doc_tokens": e.max_doc_tokens, "bleurt_checkpoint": e.bleurt_checkpoint}
    return {k: v for k, v in options.items() if v is not None}


def general_loss(cfg: Config, model, tok, limit: int = 200) -> dict:
    """Mean assistant-token loss and perplexity on held-out general data: what a method costs in general ability."""
    if not (cfg.general and cfg.general.heldout_path):
        raise ConfigError("metric 'general' needs general.heldout_path (held-out general instruction data)")
    examples = list(to_examples(read_records(cfg.general.heldout_path), "auto", {}, id_prefix="heldout"))[:limit]
    encoded = [encode(tok, ex["messages"], cfg.train.max_length) for ex in examples]
    encoded = [e for e in encoded if e["n_supervised"] > 0]
    collate = collate_padded(tok.pad_token_id)
    per_example = []
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(encoded), cfg.eval.batch_size):
            batch = collate([[e] for e in encoded[start: start + cfg.eval.batch_size]])
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
            labels = batch["labels"][:, 1:]
            loss = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), labels, reduction="none",
                                                     ignore_index=-100)
            mask = labels != -100
            per_example += (loss.sum(1) / mask.sum(1)).tolist()
    point, low, high = bootstrap_ci(np.array(per_example), seed=cfg.train.seed)
    return {"n": len(per_example), "scores": {
        "loss": {"value": point, "ci_low": low, "ci_high": high},
        "perplexity": {"value": math.exp(point), "ci_low": math.exp(low), "ci_high": math.exp(high)}}}
