"""Task-aware stop rule: a sequence is done once its first top-level JSON object is closed.

Opt-in (``eval.stop_at_json``). The output is then cut right after that object's
closing brace, with the brace matching of ``jsonparse.first_object_span`` (braces
inside JSON strings do not count). What it can change: ``json/strict`` counts an
output as strict only if nothing but whitespace follows the object, and text the
model would have written after the object is never generated, so strict can
only go up (by the items that had trailing text); lenient, field_exact and the
label read that same first object unless a ``` fenced block would have followed
it. With EOS alone (the default) outputs are exactly what the model generates.
"""

from __future__ import annotations

from ..metrics.jsonparse import first_object_span


def end_of_first_object(text: str) -> int | None:
    """Index just past the closing brace of the first balanced {...} in `text`, or None while it is open."""
    span = first_object_span(text)
    return None if span is None else text.find("{") + len(span)


def json_object_closed(tokenizer, tokens: list[int]) -> bool:
    # Only a token whose text holds a "}" can close the object: skip decoding the rest.
    if "}" not in tokenizer.decode(tokens[-1:]):
        return False
    return end_of_first_object(tokenizer.decode(tokens, skip_special_tokens=True)) is not None
