"""Chat-template rendering and assistant-only loss masks.

We render with the model's own chat template and mark as supervised exactly
the characters the assistant turns add: for assistant turn k the span between
render(messages[:k], add_generation_prompt=True) and render(messages[:k+1]).
Tokens are then labelled by their character offsets, so BPE merges across a
boundary can never shift the mask.
"""

from __future__ import annotations

from typing import Any

from ..errors import ModelError

IGNORE = -100


def render(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def supervised_spans(tokenizer, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The full rendered text and the character spans of assistant turns."""
    full = render(tokenizer, messages)
    spans = []
    for k, turn in enumerate(messages):
        if turn["role"] != "assistant":
            continue
        before = render(tokenizer, messages[:k], add_generation_prompt=True)
        through = render(tokenizer, messages[: k + 1])
        if not (full.startswith(through) and through.startswith(before)):
            raise ModelError("the tokenizer's chat template is not prefix-stable (rendering a conversation "
                             "prefix does not give a prefix of the full rendering); use a standard template")
        spans.append((len(before), len(through)))
    return full, spans


def encode(tokenizer, messages: list[dict], max_length: int) -> dict[str, Any]:
    """input_ids and labels (assistant tokens only), truncated on the right to max_length."""
    text, spans = supervised_spans(tokenizer, messages)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True,
                    truncation=True, max_length=max_length)
    ids = enc["input_ids"]
    labels = [IGNORE] * len(ids)
    for i, (start, end) in enumerate(enc["offset_mapping"]):
        if end > start and any(a <= start < b for a, b in spans):
            labels[i] = ids[i]
    n_sup = sum(1 for x in labels if x != IGNORE)
    return {"input_ids": ids, "labels": labels, "n_tokens": len(ids), "n_supervised": n_sup}


def encode_prompt(tokenizer, messages: list[dict]) -> str:
    """The generation prompt for evaluation: everything before the final assistant turn."""
    turns = messages[:-1] if messages and messages[-1]["role"] == "assistant" else messages
    return render(tokenizer, turns, add_generation_prompt=True)
