"""A chat template that puts the run's anchor in by itself.

TELL trains the task with an anchor on every task prompt; served without it, the model
answers like its general data. The exported tokenizer's default template therefore wraps the
original one: it rewrites ``messages`` the way `tellkit.data.anchor.apply_anchor` does, then renders
them with the untouched original. Any server that renders chat templates (transformers,
vLLM, TGI, llama.cpp, Ollama via the GGUF) then applies the anchor without knowing about it.
"""

from __future__ import annotations

import json

# Jinja string literals are decoded with unicode-escape, so an ASCII-only JSON string is a valid,
# exact literal for any anchor text (quotes, newlines, non-ASCII, even "%}" inside).
_PREFIX = """{%- set tellkit_anchor = ANCHOR -%}
{%- set tellkit_sep = SEP -%}
{%- set tellkit = namespace(messages=[], done=false) -%}
{%- for m in messages -%}
{%- if not tellkit.done and m['role'] == 'user' -%}
{%- set tellkit.messages = tellkit.messages + [dict(m, content=tellkit_anchor ~ tellkit_sep ~ m['content'])] -%}
{%- set tellkit.done = true -%}
{%- else -%}
{%- set tellkit.messages = tellkit.messages + [m] -%}
{%- endif -%}
{%- endfor -%}
{%- set messages = tellkit.messages -%}
"""

_SYSTEM = """{%- set tellkit_anchor = ANCHOR -%}
{%- set tellkit_sep = SEP -%}
{%- if messages and messages[0]['role'] == 'system' -%}
{%- set messages = [dict(messages[0], content=tellkit_anchor ~ tellkit_sep ~ messages[0]['content'])] + messages[1:] -%}
{%- else -%}
{%- set messages = [{'role': 'system', 'content': tellkit_anchor}] + messages -%}
{%- endif -%}
"""


def anchored_template(template: str, anchor: str, position: str = "prefix", separator: str = "\n\n") -> str:
    """``template`` preceded by a rewrite of ``messages`` that inserts ``anchor`` at ``position``."""
    head = _SYSTEM if position == "system" else _PREFIX
    head = head.replace("ANCHOR", json.dumps(anchor), 1).replace("SEP", json.dumps(separator), 1)
    return head + template
