"""Tokenizer loading for data preparation (no model weights needed)."""

from __future__ import annotations

from transformers import AutoTokenizer

from ..errors import ModelError


def load_tokenizer(ref, *, trust_remote_code: bool = False):
    """The model's tokenizer with a pad token (an existing one: never grow the vocabulary)."""
    try:
        tok = AutoTokenizer.from_pretrained(str(ref), trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot load a tokenizer from {ref}: {str(e).splitlines()[0]}") from None
    if tok.chat_template is None:
        raise ModelError(f"the tokenizer of {ref} has no chat template; use an instruct model or set one")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok
