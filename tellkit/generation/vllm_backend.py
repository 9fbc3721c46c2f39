"""``eval.backend: vllm``: generation with vLLM (GPU serving, LoRA adapters applied unmerged).

vLLM gets the very token ids the hf backend would decode from (the same chat
rendering and anchor, no special tokens added), greedy or temperature sampling
with the same max_new_tokens, and its prefix caching reuses the shared prompt
prefix. Metrics and files are written by the same runner code as for ``hf``.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..data.tokenize import prompt_ids
from ..errors import ConfigError

INSTALL_HINT = "pip install vllm (needs a CUDA GPU), or set eval.backend: hf"


def require_vllm():
    """The vllm module, or a one-line error saying how to get it."""
    try:
        import vllm
    except ImportError as e:
        raise ConfigError(f"eval.backend is 'vllm' but vLLM is not installed ({e}); {INSTALL_HINT}") from None
    return vllm


def generate_vllm(model_path: str | Path, tokenizer, prompts: list[str], *, max_new_tokens: int,
                  adapter: Path | None = None, do_sample: bool = False, temperature: float = 1.0, seed: int = 0,
                  dtype: str = "auto", trust_remote_code: bool = False) -> list[str]:
    """One stripped output per prompt, in order, from vLLM; `adapter` is a PEFT LoRA folder served unmerged."""
    vllm = require_vllm()
    from vllm.lora.request import LoRARequest

    lora_rank = None
    if adapter is not None:
        lora_rank = json.loads((Path(adapter) / "adapter_config.json").read_text(encoding="utf-8"))["r"]
    llm = vllm.LLM(model=str(model_path), tokenizer=str(model_path), dtype=dtype, seed=seed,
                   trust_remote_code=trust_remote_code, enable_prefix_caching=True,
                   enable_lora=adapter is not None, **({"max_lora_rank": max(8, lora_rank)} if lora_rank else {}))
    params = vllm.SamplingParams(max_tokens=max_new_tokens, temperature=temperature if do_sample else 0.0,
                                 seed=seed, skip_special_tokens=True)
    requests = [{"prompt_token_ids": prompt_ids(tokenizer, p)} for p in prompts]  # user text stays text
    lora = LoRARequest("tellkit-adapter", 1, str(adapter)) if adapter is not None else None
    results = llm.generate(requests, params, lora_request=lora, use_tqdm=True)
    return [r.outputs[0].text.strip() for r in results]
