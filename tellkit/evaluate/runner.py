"""`tellkit eval`: generate on the task's test split and score, for a run or for the base model.

A run's own anchor (recorded in run.json) is applied to the test queries, so
evaluation sees the task the way training did; the base model and SFT runs
get no anchor.
"""

from __future__ import annotations

import itertools
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
from ..errors import ConfigError, TellkitError, check_count
from ..generation.generate import generate, generated_tokens
from ..generation.vllm_backend import generate_vllm, require_vllm
from ..io import write_json_atomic, write_text_atomic
from ..metrics import general as general_metric
from ..owned import temp_of
from ..runs.loader import load_model, load_tokenizer, model_ref
from ..runs.source import read_run
from ..track import log_final_scores
from ..train.loss import fuse_head, linear_cross_entropy, unfuse_head
from ..train.precision import eval_bf16, score_bf16

# Metrics computed from the model itself, not from generated text: `general`, the held-out loss on data
# from the general mix's own source (in distribution), and `general_ood`, general ability on
# lm-evaluation-harness tasks outside every mix (evaluate/harness.py).
MODEL_METRICS = ("general", "general_ood")
BASE_FILES = ("scores.json", "predictions.jsonl")  # what a base evaluation writes into its folder


def evaluate_run(run_dir: str | Path, *, cfg: Config | None = None, limit: int | None = None,
                 overrides: list[str] | None = None) -> dict:
    """Evaluate a finished run folder (adapter + the anchor it was trained with).

    Eval settings come from `cfg` when given, else from the run's own config.yaml."""
    run = read_run(run_dir, cfg=cfg, overrides=overrides)
    result = evaluate(run.cfg, adapter=run.adapter, anchor=run.anchor, out_dir=run.path / "eval", limit=limit)
    log_final_scores(run.path, run.cfg, result)  # into the trackers of train.report_to, if any
    return result


def evaluate_base(cfg: Config, out_dir: Path, *, limit: int | None = None) -> dict:
    """Evaluate the untrained base model (no adapter, no anchor) into `out_dir`: a new or empty folder, or
    one holding only an earlier base evaluation (nothing else in it is tellkit's to overwrite)."""
    out_dir = Path(out_dir)
    if out_dir.is_dir():
        extra = sorted(p.name for p in out_dir.iterdir()
                       if p.name not in BASE_FILES and temp_of(p.name) not in BASE_FILES)
        if extra:
            raise TellkitError(f"{out_dir} holds {', '.join(extra[:3])}{' ...' if len(extra) > 3 else ''}, which "
                               "tellkit did not write; the base model's scores go to a new or empty folder: move "
                               "those out, or change output.dir (the scores go to OUTPUT_DIR-base)")
    return evaluate(cfg, adapter=None, anchor=None, out_dir=out_dir, limit=limit)


def evaluate(cfg: Config, *, adapter: Path | None, anchor: str | None, out_dir: Path,
             limit: int | None = None) -> dict:
    check_count(limit, "--limit")
    if not cfg.task.test_path:
        raise ConfigError("task.test_path is not set: evaluation needs a test split")
    names = list(cfg.eval.metrics)
    text_metrics = [m for m in names if m not in MODEL_METRICS]
    unknown = set(text_metrics) - set(metric_registry.available())
    if unknown:
        metric_registry.compute(sorted(unknown), [], [])  # raises the registry's own "unknown metric" error
    examples = list(to_examples(read_records(cfg.task.test_path), cfg.task.format, cfg.task.columns,
                                id_prefix="test"))[: cfg.eval.limit if limit is None else limit]
    vllm = cfg.eval.backend == "vllm"
    if vllm:
        require_vllm()  # before any weights load
    model, tok = (None, load_tokenizer(cfg)) if vllm else load_model(cfg, adapter)
    prompts = [encode_prompt(tok, apply_anchor(ex["messages"], anchor, cfg.anchor.position, cfg.anchor.separator))
               for ex in examples]
    golds = [ex["messages"][-1]["content"] for ex in examples]
    bf16 = eval_bf16(cfg.eval.bf16, cfg.train.bf16)
    start = time.perf_counter()
    if not text_metrics:  # model metrics only (e.g. the held-out loss): a forward pass, nothing to generate
        outputs = [""] * len(examples)
    elif vllm:
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
    scores.update(model_metrics(cfg, [m for m in names if m in MODEL_METRICS], model, tok, adapter))

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


def model_metrics(cfg: Config, names: list[str], model, tok, adapter: Path | None) -> dict:
    """The model metrics among `names`, from `model` (loaded with the adapter merged when None is given)."""
    if not names:
        return {}
    if model is None:
        model = load_model(cfg, adapter)[0]
    out = {}
    if "general" in names:
        out["general"] = general_loss(cfg, model, tok)
    if "general_ood" in names:
        from .harness import general_ood

        out["general_ood"] = general_ood(cfg, model, tok)
    return out


def top_up(cfg: Config, eval_dir: Path, *, adapter: Path | None) -> dict:
    """Add the model metrics of eval.metrics that `eval_dir/scores.json` lacks (an evaluation written before
    they were asked for, e.g. a finished compare cell that now also measures general ability); the text
    metrics and outputs are kept, nothing is generated again. Returns the evaluation result."""
    scores_file = eval_dir / "scores.json"
    result = json.loads(scores_file.read_text(encoding="utf-8"))
    missing = missing_metrics(cfg, result)
    if missing:
        model, tok = load_model(cfg, adapter)
        result["metrics"].update(model_metrics(cfg, missing, model, tok, adapter))
        write_json_atomic(scores_file, result)
    return result


def missing_metrics(cfg: Config, result: dict) -> list[str]:
    """The model metrics eval.metrics asks for that a stored evaluation result does not hold, or holds for
    another general suite (eval.general_tasks, eval.general_limit or the scoring precision changed since)."""
    from ..metrics.general_ood import measured_as_asked

    have = result.get("metrics", {})
    bf16 = score_bf16(cfg.eval.bf16, cfg.train.bf16)
    return [m for m in cfg.eval.metrics if m in MODEL_METRICS and (m not in have or (
        m == "general_ood" and not measured_as_asked(have[m], cfg.eval.general_tasks, cfg.eval.general_limit, bf16)))]


def general_loss(cfg: Config, model, tok, limit: int = 200) -> dict:
    """Mean assistant-token loss and perplexity on held-out general data: held-out examples from the same
    source as the general mix, so an in-distribution measure (TELL trains on that distribution); general
    ability outside the mix is `general_ood`.

    The per-example losses go into the result's ``items``, so comparisons bootstrap over the same
    held-out examples, paired between methods."""
    if not (cfg.general and cfg.general.heldout_path):
        raise ConfigError("metric 'general' needs general.heldout_path (held-out general instruction data)")
    examples = list(to_examples(read_records(cfg.general.heldout_path), "auto", {}, id_prefix="heldout"))[:limit]
    encoded = [encode(tok, ex["messages"], cfg.train.max_length) for ex in examples]
    encoded = [e for e in encoded if e["n_supervised"] > 0]
    per_example = supervised_losses(model, encoded, tok.pad_token_id, cfg.eval.batch_size)
    return general_metric.loss_result(per_example, cfg.train.seed)


def supervised_losses(model, encoded: list[dict], pad_id: int, batch_size: int,
                      pack_tokens: int | None = None) -> list[float]:
    """Each example's mean cross-entropy over its supervised tokens, in the order given.

    Three things keep this cheap without changing the numbers. The examples are packed, shortest
    first, into rows of at most `pack_tokens` tokens with no padding at all, each attending only to
    itself (the varlen attention training uses, train/attention.py: per-example causal SDPA, so no
    (row x row) mask and no padded positions are computed); a model whose attention cannot be switched
    gets length-sorted padded batches of `batch_size` instead. The output head (SmolLM2: a 49,152-wide
    projection, most of the compute over a whole sequence) runs only on the positions whose next token
    is supervised, fused with the loss (train.loss, which falls back to the model's own logits when its
    head does more than a projection). And nothing is generated. The model is frozen: this is
    evaluation, and a frozen head is what fuses."""
    model.eval().requires_grad_(False)
    order = sorted(range(len(encoded)), key=lambda i: encoded[i]["n_tokens"])
    losses = [math.nan] * len(encoded)
    longest = max((e["n_tokens"] for e in encoded), default=1)
    packed = _varlen(model)
    groups = (_packs(order, encoded, max(pack_tokens or batch_size * longest, longest)) if packed is not None
              else [order[i: i + batch_size] for i in range(0, len(order), batch_size)])
    head = fuse_head(model)  # the model now returns its final hidden states instead of logits
    try:
        with torch.inference_mode():
            for rows in groups:
                batch = [encoded[i] for i in rows]
                out, targets, owner = _packed_forward(model, batch) if packed is not None else \
                    _padded_forward(model, batch, pad_id)
                token_loss = _cross_entropy(out, targets, head)
                sums = torch.zeros(len(rows), device=token_loss.device).index_add_(0, owner, token_loss)
                counts = torch.zeros(len(rows), device=token_loss.device).index_add_(0, owner, torch.ones_like(token_loss))
                for i, loss in zip(rows, (sums / counts).tolist()):
                    losses[i] = loss
    finally:
        unfuse_head(model, head)
        if packed is not None:
            model.set_attn_implementation(packed)
    return losses


def _varlen(model) -> str | None:
    """Switch `model` to tellkit's per-example attention for packed rows; returns the attention to restore
    afterwards, or None (and nothing switched) where the model cannot take it."""
    from ..train.attention import NAME

    before = getattr(model.config, "_attn_implementation", None)
    if before is None or not hasattr(model, "set_attn_implementation"):
        return None
    try:
        model.set_attn_implementation(NAME)
    except (ValueError, ImportError, NotImplementedError, AttributeError):
        return None
    return before


def _packs(order: list[int], encoded: list[dict], budget: int) -> list[list[int]]:
    """Consecutive examples of `order` grouped into rows of at most `budget` tokens."""
    groups, current, size = [], [], 0
    for i in order:
        n = encoded[i]["n_tokens"]
        if current and size + n > budget:
            groups.append(current)
            current, size = [], 0
        current.append(i)
        size += n
    return groups + ([current] if current else [])


def _packed_forward(model, batch: list[dict]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One padding-free row: (outputs at supervised positions, their targets, the example each belongs to).
    Labels are shifted per example, so no example's last token predicts the next one's first."""
    lengths = [e["n_tokens"] for e in batch]
    ids = torch.tensor([t for e in batch for t in e["input_ids"]], device=model.device)[None]
    targets = torch.tensor([t for e in batch for t in e["labels"][1:] + [IGNORE]], device=model.device)
    owner = torch.repeat_interleave(torch.arange(len(batch), device=model.device),
                                    torch.tensor(lengths, device=model.device))
    cu = torch.tensor([0, *itertools.accumulate(lengths)], dtype=torch.int32, device=model.device)
    positions = torch.cat([torch.arange(n, device=model.device) for n in lengths])[None]
    out = model(input_ids=ids, position_ids=positions, cu_seq_lens_q=cu, cu_seq_lens_k=cu,
                max_length_q=max(lengths), max_length_k=max(lengths), use_cache=False).logits[0]
    picked = targets != IGNORE
    return out[picked], targets[picked], owner[picked]


def _padded_forward(model, batch: list[dict], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The same from a right-padded batch with an attention mask."""
    ids, labels, mask = (t.to(model.device) for t in _padded(batch, pad_id))
    targets = labels[:, 1:]  # position t predicts token t + 1
    picked = targets != IGNORE
    out = model(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, :-1][picked]
    return out, targets[picked], picked.nonzero()[:, 0]


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
