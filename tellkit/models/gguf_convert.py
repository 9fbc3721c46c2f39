"""Convert a GGUF model into a float32 safetensors folder and check it against the GGUF.

Shared by the GGUF-backed aliases (smollm2.py, gemma3.py): each supplies what
differs (the config class, tokenizer fixes, generation-config defaults, a probe
to encode), and this module does the rest the same way for all of them:
de-quantize with transformers' GGUF loader, write weights/config/tokenizer
ourselves, then reload the folder and require the same logits and token ids.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Config keys that only describe the GGUF load, not the model; a saved folder must not carry them
# (quantization_config would make transformers treat the fp32 folder as GGUF-quantized).
_LOAD_ONLY_CONFIG_KEYS = ("quantization_config", "_name_or_path", "_model_name_or_path", "transformers_version")


@dataclass(frozen=True)
class GGUFSpec:
    """What one GGUF-backed alias needs from the shared converter."""

    label: str  # names the model in errors: "<label> GGUF: ..." / "<label> conversion check failed: ..."
    architecture: str  # config.architectures[0], e.g. "LlamaForCausalLM"
    config_class: str  # the transformers config class by name, e.g. "LlamaConfig" (imported when converting)
    probe: Callable[[Any], list[int]]  # tokenizer -> the token ids the logits/tokenizer checks use
    fix_tokenizer: Callable[[Any], Any] = lambda tok: tok
    # bos/eos/pad written to generation_config.json when the GGUF's generation config has none
    generation_defaults: dict[str, int] = field(default_factory=dict)
    extra_eos: tuple[int, ...] = ()  # further stop ids (an end-of-turn token the chat template closes turns with)
    tied: bool = True  # the tie_word_embeddings the GGUF must have (read from its tensors by transformers)
    atol: float = 1e-4
    rtol: float = 1e-4


def require_gguf(alias: str, pip_hint: str) -> None:
    """ModelError naming `pip_hint` unless the gguf package (transformers' GGUF reader needs it) is installed."""
    import importlib.util

    from tellkit.errors import ModelError

    if importlib.util.find_spec("gguf") is None:
        raise ModelError(f"model '{alias}' needs the gguf package to convert the weights; install it with `{pip_hint}`")


def clean_tokenizer_config(path: Path) -> None:
    """Drop load-time leftovers of the GGUF load from a saved tokenizer_config.json."""
    data = json.loads(path.read_text(encoding="utf-8"))
    for key in ("is_local", "local_files_only", "name_or_path"):
        data.pop(key, None)
    data["clean_up_tokenization_spaces"] = False
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def convert_gguf(folder: Path, gguf_file: str, out: Path, spec: GGUFSpec) -> float:
    """Write ``folder/gguf_file`` as a float32 safetensors model folder ``out``; return the max |logit diff|.

    Raises RuntimeError if the reloaded folder's logits or token ids differ from the GGUF model's.
    ``folder`` may be deleted once this returns (nothing in ``out`` refers to it).
    """
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    tok = AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf_file)
    tok = spec.fix_tokenizer(tok)
    gguf_model = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=gguf_file, dtype=torch.float32)

    # A GGUF-loaded model refuses save_pretrained (it carries a GGUF
    # "quantizer"); write the de-quantized weights ourselves, with a clean config.
    cfg = gguf_model.config.to_dict()
    for key in _LOAD_ONLY_CONFIG_KEYS:
        cfg.pop(key, None)
    cfg["architectures"] = [spec.architecture]
    cfg["dtype"] = "float32"
    # GGUF stores the eps as float32: 1e-5 reads back as 9.99999974738e-06 (1e-6 likewise); use the published value
    cfg["rms_norm_eps"] = float(f"{cfg['rms_norm_eps']:.6g}")
    import transformers

    config = getattr(transformers, spec.config_class).from_dict(cfg)
    if bool(config.tie_word_embeddings) != spec.tied:
        raise RuntimeError(f"{spec.label} GGUF: expected tie_word_embeddings={str(spec.tied).lower()}")

    state = gguf_model.state_dict()
    if spec.tied and "lm_head.weight" in state:
        if not torch.equal(state["lm_head.weight"], state["model.embed_tokens.weight"]):
            raise RuntimeError(f"{spec.label} GGUF: lm_head differs from the tied embeddings")
        del state["lm_head.weight"]  # tied: save_pretrained drops it too
    state = {k: v.detach().to(torch.float32).contiguous() for k, v in state.items()}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    del state
    config.save_pretrained(out)
    gen = gguf_model.generation_config.to_dict()
    ids = {key: gen.get(key, default) for key, default in spec.generation_defaults.items()}
    if spec.extra_eos:
        eos = ids.get("eos_token_id")
        ids["eos_token_id"] = [*([] if eos is None else eos if isinstance(eos, list) else [eos]), *spec.extra_eos]
    GenerationConfig(**ids).save_pretrained(out)
    tok.save_pretrained(out)
    clean_tokenizer_config(out / "tokenizer_config.json")

    # Check: the safetensors folder reloads to the same logits as the GGUF model.
    probe_ids = spec.probe(tok)
    probe = torch.tensor([probe_ids])
    with torch.no_grad():
        want = gguf_model(probe).logits
    del gguf_model
    reloaded = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32, use_safetensors=True)
    with torch.no_grad():
        got = reloaded(probe).logits
    del reloaded
    max_diff = float((got - want).abs().max())
    if not torch.allclose(got, want, atol=spec.atol, rtol=spec.rtol):
        raise RuntimeError(f"{spec.label} conversion check failed: max |logit diff| {max_diff:.3g}")
    if spec.probe(AutoTokenizer.from_pretrained(str(out))) != probe_ids:
        raise RuntimeError(f"{spec.label} conversion check failed: the saved tokenizer encodes differently")
    log.info("%s: converted %s; reloaded logits match (max |diff| %.3g)", spec.label, gguf_file, max_diff)
    return max_diff
