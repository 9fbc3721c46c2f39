"""Chat-template rendering and assistant-only loss masks, with user text kept out of control tokens.

We render with the model's own chat template and mark as supervised exactly
the characters the assistant turns add: for assistant turn k the span between
render(messages[:k], add_generation_prompt=True) and render(messages[:k+1]).
Tokens are then labelled by their character offsets, so BPE merges across a
boundary can never shift the mask.

User text never becomes a control token. A rendered conversation is one string in which the
template's own `<|im_start|>` and a "<|im_start|>" written in a task example, a general example,
an anchor or a predict/chat input look alike, and the tokenizer would parse both as the control
token: data could open turns, end answers or stop generation. So the control-token strings inside
message contents are first replaced by a run of one private-use character of the same length
(`_shield`), the template is rendered around them, and the text is tokenized in pieces: each of the
template's control tokens as its id, the text between them with special-token parsing off
(`split_special_tokens`), the user's control strings restored in it. That is the tokenizer's own
procedure (split at added tokens, tokenize the rest piece by piece) minus the parsing of user text.
Conversations without control strings in their contents, the usual case, take the plain path, so
their ids are exactly the tokenizer's (tests/data/test_tokenize.py checks that the pieces give the
same ids on such text too).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import ModelError

IGNORE = -100
# What encode() makes of a text; part of the tokenization cache key (data/cache.py), so a change here
# never reuses ids encoded the old way. 2: control-token strings in message contents stay text.
ENCODING = 2


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
    shielded, restore = _shield(tokenizer, messages)
    text, spans = supervised_spans(tokenizer, shielded)
    enc = _tokenize(tokenizer, text, restore, max_length=max_length)
    ids = enc["input_ids"]
    labels = [IGNORE] * len(ids)
    for i, (start, end) in enumerate(enc["offset_mapping"]):
        if end > start and any(a <= start < b for a, b in spans):
            labels[i] = ids[i]
    n_sup = sum(1 for x in labels if x != IGNORE)
    return {"input_ids": ids, "labels": labels, "n_tokens": len(ids), "n_supervised": n_sup}


class Prompt(str):
    """A rendered generation prompt (the text) carrying its token ids (`.ids`).

    Generation must use `.ids`: tokenizing the text again would parse control-token strings the user
    wrote in it as control tokens."""

    ids: list[int]

    def __new__(cls, text: str, ids: list[int]) -> "Prompt":
        prompt = super().__new__(cls, text)
        prompt.ids = list(ids)
        return prompt


def encode_prompt(tokenizer, messages: list[dict]) -> Prompt:
    """The generation prompt for evaluation: everything before the final assistant turn."""
    turns = messages[:-1] if messages and messages[-1]["role"] == "assistant" else messages
    shielded, restore = _shield(tokenizer, turns)
    text = render(tokenizer, shielded, add_generation_prompt=True)
    return Prompt(_restored(text, restore), _tokenize(tokenizer, text, restore, offsets=False)["input_ids"])


def prompt_ids(tokenizer, prompt: str) -> list[int]:
    """The ids to generate from: a Prompt's own; a plain string's (rendered elsewhere) by the tokenizer."""
    if isinstance(prompt, Prompt):
        return prompt.ids
    return tokenizer(prompt, add_special_tokens=False)["input_ids"]


# ------------------------------------------------------------------ keeping user text out of control tokens


@dataclass(frozen=True)
class _Controls:
    """A tokenizer's special added tokens: their ids, and regexes that find them in text."""

    ids: dict[str, int]
    pattern: re.Pattern | None  # any control string, longest first (so the tokenizer's leftmost-longest match)
    lstrip: frozenset[str]  # tokens that swallow the whitespace before / after them (AddedToken flags)
    rstrip: frozenset[str]


_CONTROLS: dict[int, tuple[object, _Controls]] = {}  # id(tokenizer) -> (tokenizer kept alive, its controls)


def _controls(tokenizer) -> _Controls:
    cached = _CONTROLS.get(id(tokenizer))
    if cached is not None and cached[0] is tokenizer:
        return cached[1]
    added = [t for t in tokenizer.added_tokens_decoder.values() if t.special and t.content]
    strings = sorted({t.content for t in added}, key=len, reverse=True)
    controls = _Controls(ids={s: tokenizer.convert_tokens_to_ids(s) for s in strings},
                         pattern=re.compile("|".join(map(re.escape, strings))) if strings else None,
                         lstrip=frozenset(t.content for t in added if t.lstrip),
                         rstrip=frozenset(t.content for t in added if t.rstrip))
    _CONTROLS[id(tokenizer)] = (tokenizer, controls)
    return controls


def _shield(tokenizer, messages: list[dict]) -> tuple[list[dict], dict[str, str]]:
    """`messages` with every control-token string in a content replaced by a same-length run of one
    private-use character, and {run: control string} to undo it; ({} when there is nothing to shield:
    the messages are returned as they are)."""
    pattern = _controls(tokenizer).pattern
    contents = [m["content"] for m in messages if isinstance(m.get("content"), str)]
    found = {hit for c in contents for hit in pattern.findall(c)} if pattern is not None else set()
    if not found:
        return messages, {}
    used = set("".join(contents))
    free = (c for c in map(chr, range(0xF0000, 0xFFFFE)) if c not in used)  # Supplementary Private Use Area-A
    runs = {s: next(free) * len(s) for s in sorted(found)}
    shielded = [{**m, "content": pattern.sub(lambda hit: runs[hit.group(0)], m["content"])}
                if isinstance(m.get("content"), str) else m for m in messages]
    return shielded, {run: s for s, run in runs.items()}


def _restored(text: str, restore: dict[str, str]) -> str:
    for run, control in restore.items():
        text = text.replace(run, control)
    return text


def _tokenize(tokenizer, text: str, restore: dict[str, str], *, offsets: bool = True,
              max_length: int | None = None) -> dict[str, list]:
    """input_ids (and offset_mapping) of rendered `text`; with `restore`, the text was rendered from
    shielded messages: every control string left in it is the template's."""
    if not restore:
        kw = {"truncation": True, "max_length": max_length} if max_length is not None else {}
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=offsets, **kw)
        return {k: list(v) for k, v in enc.items() if k in ("input_ids", "offset_mapping")}
    c = _controls(tokenizer)
    ids: list[int] = []
    spans: list[tuple[int, int]] = []

    def piece(start: int, end: int) -> None:
        if end <= start:
            return
        enc = tokenizer(_restored(text[start:end], restore), add_special_tokens=False, split_special_tokens=True,
                        return_offsets_mapping=True)
        ids.extend(enc["input_ids"])
        spans.extend((a + start, b + start) for a, b in enc["offset_mapping"])

    pos = 0
    for hit in c.pattern.finditer(text):
        start, end, token = hit.start(), hit.end(), hit.group(0)
        if token in c.lstrip:  # the tokenizer's lstrip/rstrip: the token takes the whitespace beside it
            start = max(pos, len(text[:start].rstrip()))
        if token in c.rstrip:
            end = len(text) - len(text[end:].lstrip())
        piece(pos, start)
        ids.append(c.ids[token])
        spans.append((hit.start(), hit.end()))
        pos = end
    piece(pos, len(text))
    if max_length is not None:
        ids, spans = ids[:max_length], spans[:max_length]
    return {"input_ids": ids, "offset_mapping": spans} if offsets else {"input_ids": ids}
