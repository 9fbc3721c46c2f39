"""Put the anchor prompt on task examples (and only on them).

The anchor is TELL's "consistent semantic marker": the same text on every task
example so the model can tell task data from the surrounding general data.
It goes in front of the first user turn (default) or in a system message.
"""

from __future__ import annotations

from ..config.schema import AnchorConfig
from ..errors import ConfigError
from ..io import read_user_text


def anchor_text(cfg: AnchorConfig) -> str | None:
    """The anchor from `anchor.text` or `anchor.file`; None when no anchor is configured."""
    if cfg.file is not None:
        text = read_user_text(cfg.file, f"anchor.file={cfg.file!r}")
    else:
        text = cfg.text
    if text is None:
        return None
    text = text.strip()
    if not text:
        raise ConfigError("anchor is empty: give anchor.text (or anchor.file) some text, or remove the anchor section")
    return text


def apply_anchor(messages: list[dict], anchor: str | None, position: str = "prefix",
                 separator: str = "\n\n") -> list[dict]:
    """Return a new message list carrying the anchor; the input is not modified."""
    if not anchor:
        return [dict(m) for m in messages]
    if position == "system":
        rest = [dict(m) for m in messages]
        if rest and rest[0]["role"] == "system":  # keep an existing system prompt after the anchor
            rest[0]["content"] = f"{anchor}{separator}{rest[0]['content']}"
            return rest
        return [{"role": "system", "content": anchor}, *rest]
    out, done = [], False
    for m in messages:
        m = dict(m)
        if not done and m["role"] == "user":
            m["content"] = f"{anchor}{separator}{m['content']}"
            done = True
        out.append(m)
    return out
