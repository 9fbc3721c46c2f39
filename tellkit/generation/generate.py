"""Generation for evaluation: continuous batching over a preallocated KV cache (see decode.py).

Greedy outputs are those of ``model.generate`` on length-sorted, left-padded
batches (what tellkit did before; tests/evaluate/test_generate.py compares them
token for token); only the work differs. Models whose cache is not plain full
attention (sliding windows, recurrent layers) or whose generation config changes
the logits (repetition penalty, banned words, ...) go through ``model.generate``
itself, so nothing is silently decoded differently. On CPU in fp32, Llama-shaped
models take their decode steps through lean_step.py: the model's own logits, bit
for bit, with fewer ops and fused projections.
"""

from __future__ import annotations

import contextlib
import math

import torch
from tqdm.auto import tqdm

from ..data.tokenize import prompt_ids
from .decode import Decoder
from .kvslots import supports_slots
from .lean_step import LeanStep
from .linear_pack import packed_linears
from .stops import end_of_first_object, json_object_closed

# generation-config fields that change greedy logits beyond argmax; with any of them set, model.generate runs.
_LOGIT_CHANGERS = {"repetition_penalty": 1.0, "no_repeat_ngram_size": 0, "encoder_no_repeat_ngram_size": 0,
                   "bad_words_ids": None, "suppress_tokens": None, "begin_suppress_tokens": None,
                   "forced_bos_token_id": None, "forced_eos_token_id": None, "min_length": 0, "min_new_tokens": None,
                   "sequence_bias": None, "exponential_decay_length_penalty": None, "guidance_scale": None,
                   "watermarking_config": None}

# The decode batch: wider batches cost little more per step (decoding reads all weights once per step either way),
# up to a KV-cache budget. On 2 AVX-512 cores a SmolLM2 step costs 4.0 ms per row at 20 rows, 3.1 at 40 and 2.8 at 64
# (benchmarks/README.md); an accelerator gains from more.
MAX_SLOTS_CPU, MAX_SLOTS_ACCEL = 64, 128
KV_BUDGET_BYTES = 2 * 1024 ** 3


def generate(model, tokenizer, prompts: list[str], *, max_new_tokens: int, batch_size: int = 8,
             do_sample: bool = False, temperature: float = 1.0, bf16: bool = False, seed: int = 0,
             max_batch: int | None = None, stop_at_json: bool = False, progress: bool = True) -> list[str]:
    """One output per prompt, in order (special tokens dropped, whitespace stripped).

    `batch_size`: the least number of sequences decoded at once; `max_batch` the most (default: as many as the KV
    budget allows, at most 32 on CPU). `stop_at_json`: end a sequence once its first top-level JSON object is
    closed (see stops.py). Works the same on a plain model and on an unmerged PeftModel (training-time dev
    evaluation: call it with a small max_new_tokens).
    """
    if not prompts:
        return []
    ids = [prompt_ids(tokenizer, p) for p in prompts]  # a Prompt's own ids: user text never parsed as control tokens
    gen_cfg = getattr(model, "generation_config", None)
    eos = _eos_ids(gen_cfg, tokenizer)
    torch.manual_seed(seed)
    autocast = torch.autocast(model.device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    model.eval()
    was_side = tokenizer.padding_side
    with torch.inference_mode(), autocast, tqdm(total=len(prompts), desc="generate", unit=" ex",
                                                disable=not progress) as bar:
        if not supports_slots(model) or _changes_logits(gen_cfg):
            out = _library_generate(model, tokenizer, prompts, ids, max_new_tokens, batch_size, do_sample, temperature,
                                    bar)
        else:
            width = decode_width(model, ids, max_new_tokens, least=batch_size, most=max_batch)
            done = (lambda toks: json_object_closed(tokenizer, toks)) if stop_at_json else None
            lean = None if bf16 else LeanStep.build(model, rows=width)
            decoder = Decoder(model, max_new_tokens=max_new_tokens, slots=width, eos_ids=eos,
                              pick=_picker(do_sample, temperature), done=done, step=lean)
            with contextlib.nullcontext() if lean else packed_linears(model, rows_hint=width):
                out = decoder.run(ids, on_finish=lambda i: bar.update(1))
            out = tokenizer.batch_decode(out, skip_special_tokens=True)
    tokenizer.padding_side = was_side
    if stop_at_json:
        out = [_cut_after_object(o) for o in out]
    return [o.strip() for o in out]


def decode_width(model, ids: list[list[int]], max_new_tokens: int, least: int = 1, most: int | None = None) -> int:
    """How many sequences to decode at once: `most`, else as many as fit KV_BUDGET_BYTES (device cap), >= `least`."""
    cfg = model.config.get_text_config(decoder=True)
    heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    per_token = 2 * cfg.num_hidden_layers * heads * head_dim * next(model.parameters()).element_size()
    per_row = per_token * (max(map(len, ids)) + max_new_tokens)
    device_cap = MAX_SLOTS_CPU if model.device.type == "cpu" else MAX_SLOTS_ACCEL
    cap = most or max(least, min(device_cap, KV_BUDGET_BYTES // per_row))
    waves = math.ceil(len(ids) / max(cap, 1))
    # Even waves: 40 prompts at cap 32 decode as 2 x 20, not 32 then a lone tail of 8 at the same step cost.
    return max(1, math.ceil(len(ids) / waves))


def _eos_ids(gen_cfg, tokenizer) -> set[int]:
    # The same stop ids model.generate uses: the generation config's, else the tokenizer's.
    eos = getattr(gen_cfg, "eos_token_id", None)
    if eos is None:
        eos = tokenizer.eos_token_id
    return set(eos if isinstance(eos, (list, tuple)) else [] if eos is None else [eos])


def _changes_logits(gen_cfg) -> bool:
    return gen_cfg is not None and any(getattr(gen_cfg, k, d) not in (d, None) for k, d in _LOGIT_CHANGERS.items())


def _picker(do_sample: bool, temperature: float):
    if not do_sample:
        return lambda logits: logits.argmax(-1)
    return lambda logits: torch.multinomial(torch.softmax(logits.float() / temperature, -1), 1)[:, 0]


def _library_generate(model, tokenizer, prompts, ids, max_new_tokens, batch_size, do_sample, temperature, bar):
    """model.generate on length-sorted, left-padded batches: for models the slot decoder does not cover."""
    tokenizer.padding_side = "left"  # decoder-only models continue from the right end
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]), reverse=True)
    sampling = {"do_sample": True, "temperature": temperature} if do_sample else {"do_sample": False}
    outputs = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        idx = order[start: start + batch_size]
        enc = tokenizer.pad({"input_ids": [ids[i] for i in idx]}, padding=True, return_tensors="pt").to(model.device)
        out = model.generate(**enc, max_new_tokens=max_new_tokens, use_cache=True,
                             pad_token_id=tokenizer.pad_token_id, top_p=None, top_k=None, **sampling)
        for i, text in zip(idx, tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)):
            outputs[i] = text
        bar.update(len(idx))
    return outputs


def _cut_after_object(text: str) -> str:
    end = end_of_first_object(text)
    return text if end is None else text[:end]


def generated_tokens(tokenizer, outputs: list[str]) -> int:
    return sum(len(tokenizer(o, add_special_tokens=False)["input_ids"]) for o in outputs)
