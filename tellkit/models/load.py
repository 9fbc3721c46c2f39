"""Load a resolved model and its tokenizer safely (safetensors only, no remote code unless asked)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tellkit.errors import ModelError
from tellkit.models.aliases import alias_key
from tellkit.models.resolve import resolve_model

_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
}


def resolve_dtype(dtype: Any = "auto") -> Any:
    """Map a config dtype to a torch dtype.

    "auto" is float32 without CUDA (bf16 weights are slow to train on CPU;
    autocast handles bf16 compute) and bfloat16 on a CUDA GPU that supports it.
    """
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    key = str(dtype).strip().lower().removeprefix("torch.")
    if key == "auto":
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if key not in _DTYPES:
        raise ModelError(f"model.dtype={dtype!r} is not supported; use auto, float32, bfloat16 or float16")
    return getattr(torch, _DTYPES[key])


_PAD_CANDIDATES = ("<|pad|>", "<pad>", "[PAD]", "<|finetune_right_pad_id|>", "<|endoftext|>")


def _ensure_pad_token(tokenizer: Any) -> None:
    """Give the tokenizer a pad token from its existing vocabulary (never add one)."""
    if tokenizer.pad_token is not None and tokenizer.pad_token_id is not None:
        return
    vocab = tokenizer.get_vocab()
    for cand in _PAD_CANDIDATES:
        if cand in vocab:
            tokenizer.pad_token = cand
            return
    for cand in (tokenizer.eos_token, tokenizer.unk_token):
        if cand is not None and cand in vocab:
            tokenizer.pad_token = cand
            return
    raise ModelError(
        f"tokenizer of {getattr(tokenizer, 'name_or_path', '?')} has no pad, eos or unk token to pad with; "
        "set pad_token in its tokenizer_config.json"
    )


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def load_tokenizer(ref: Path | str, *, trust_remote_code: bool = False) -> Any:
    """The tokenizer alone (data preparation needs no weights): chat template required, pad token ensured."""
    from transformers import AutoTokenizer

    src = str(ref)
    try:
        tokenizer = AutoTokenizer.from_pretrained(src, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as e:
        raise ModelError(f"cannot load the tokenizer of {src}: {_first_line(e)}") from e
    if not getattr(tokenizer, "chat_template", None):
        raise ModelError(
            f"tokenizer of {src} has no chat template; use an instruct/chat model, or set chat_template "
            "in its tokenizer_config.json (or chat_template.jinja)"
        )
    _ensure_pad_token(tokenizer)
    return tokenizer


def load_model_and_tokenizer(
    ref: Path | str,
    *,
    dtype: Any = "auto",
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
) -> tuple[Any, Any]:
    """Load (model, tokenizer) from what `resolve_model` returned (aliases also work).

    Safetensors only unless ``allow_pickle``; ``trust_remote_code`` is passed
    explicitly. The tokenizer must have a chat template; it gets a pad token
    from its own vocabulary if it has none. ``padding_side`` is left as is.
    """
    from transformers import AutoModelForCausalLM

    if isinstance(ref, str) and alias_key(ref) is not None:
        ref = resolve_model(ref, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
    torch_dtype = resolve_dtype(dtype)
    src = str(ref)
    tokenizer = load_tokenizer(src, trust_remote_code=trust_remote_code)

    try:
        model = AutoModelForCausalLM.from_pretrained(
            src,
            dtype=torch_dtype,
            use_safetensors=None if allow_pickle else True,
            trust_remote_code=trust_remote_code,
        )
    except (OSError, ValueError) as e:
        msg = _first_line(e)
        if "trust_remote_code" in str(e):
            raise ModelError(
                f"model {src} needs its own Python code; set `model.trust_remote_code: true` only if you "
                "trust its source"
            ) from e
        if not allow_pickle and ("safetensors" in str(e).lower() or ".bin" in str(e)):
            raise ModelError(
                f"cannot load safetensors weights of {src} ({msg}); if it only has .bin/.pt weights and you "
                "trust the source, set `model.allow_pickle: true`"
            ) from e
        raise ModelError(f"cannot load model {src}: {msg}") from e

    emb = model.get_input_embeddings()
    if emb is not None and len(tokenizer) > emb.num_embeddings:
        raise ModelError(
            f"tokenizer of {src} has {len(tokenizer)} tokens but the model embeds only {emb.num_embeddings}; "
            "the tokenizer does not belong to this model"
        )
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    gen = getattr(model, "generation_config", None)
    if gen is not None and gen.pad_token_id is None:
        gen.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer
