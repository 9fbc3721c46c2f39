"""Batched generation: left padding, KV cache, length-sorted batches.

Sorting prompts by length keeps padding (wasted compute) small; results are
returned in the input order.
"""

from __future__ import annotations

import contextlib

import torch
from tqdm.auto import tqdm


def generate(model, tokenizer, prompts: list[str], *, max_new_tokens: int, batch_size: int = 8,
             do_sample: bool = False, temperature: float = 1.0, bf16: bool = False, seed: int = 0) -> list[str]:
    tokenizer.padding_side = "left"  # decoder-only models continue from the right end
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]), reverse=True)
    outputs: list[str] = [""] * len(prompts)
    torch.manual_seed(seed)
    autocast = torch.autocast(model.device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    sampling = {"do_sample": True, "temperature": temperature} if do_sample else {"do_sample": False}
    model.eval()
    with torch.inference_mode(), autocast, tqdm(total=len(prompts), desc="generate", unit=" ex") as bar:
        for start in range(0, len(order), batch_size):
            idx = order[start: start + batch_size]
            enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True,
                            add_special_tokens=False).to(model.device)
            out = model.generate(**enc, max_new_tokens=max_new_tokens, use_cache=True,
                                 pad_token_id=tokenizer.pad_token_id, top_p=None, top_k=None, **sampling)
            new = out[:, enc["input_ids"].shape[1]:]
            for i, text in zip(idx, tokenizer.batch_decode(new, skip_special_tokens=True)):
                outputs[i] = text.strip()
            bar.update(len(idx))
    return outputs


def generated_tokens(tokenizer, outputs: list[str]) -> int:
    return sum(len(tokenizer(o, add_special_tokens=False)["input_ids"]) for o in outputs)
