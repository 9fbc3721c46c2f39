"""Strict and lenient parsing of a model output that should be one JSON object.

Strict: the output, with surrounding whitespace stripped, is exactly one JSON
object. This is what a downstream program calling ``json.loads`` would get.

Lenient: anything that parses strictly, otherwise a fixed, conservative
repair, applied in this order and nothing else:

1. if the text contains a markdown code fence (```` ``` ```` or ```` ```json ````),
   keep only the content of the first fenced block;
2. keep only the first balanced ``{...}`` span, matching braces outside JSON
   strings (so ``"a}"`` inside a value does not end the span); surrounding
   prose, a second object or an enclosing list are dropped;
3. delete trailing commas before ``}`` or ``]`` (outside strings).

The result must parse with ``json.loads`` as an object. No quote fixing, no
key guessing, no truncated-output completion: each of those can invent
content the model never produced, which would inflate scores.
"""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"```[A-Za-z0-9_+-]*[ \t]*\n?(.*?)```", re.DOTALL)


def parse_strict(text: str) -> dict[str, Any] | None:
    """The object if ``text`` is exactly one JSON object (modulo outer whitespace), else None."""
    try:
        value = json.loads(text.strip())
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def parse_lenient(text: str) -> dict[str, Any] | None:
    """The object recovered by the documented repair (see module docstring), else None."""
    strict = parse_strict(text)
    if strict is not None:
        # A valid object may contain ``` inside a string value; never "repair" it.
        return strict
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1)
    span = first_object_span(text)
    if span is None:
        return None
    try:
        value = json.loads(remove_trailing_commas(span))
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _structural(text: str, start: int = 0):
    """Yield (index, char, outside_string) so callers see braces and commas only outside JSON strings."""
    in_string = escaped = False
    for i in range(start, len(text)):
        ch = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            yield i, ch, False
        else:
            in_string = ch == '"'
            yield i, ch, not in_string


def first_object_span(text: str) -> str | None:
    """The first balanced ``{...}`` substring, counting braces only outside JSON strings."""
    start = text.find("{")
    if start < 0:
        return None
    depth = 0
    for i, ch, outside in _structural(text, start):
        if outside and ch in "{}":
            depth += 1 if ch == "{" else -1
            if depth == 0:
                return text[start : i + 1]
    return None


def remove_trailing_commas(text: str) -> str:
    """Drop commas that are followed (after whitespace) by ``}`` or ``]``, outside strings."""
    out: list[str] = []
    for i, ch, outside in _structural(text):
        if outside and ch == "," and text[i + 1:].lstrip()[:1] in ("}", "]"):
            continue
        out.append(ch)
    return "".join(out)
