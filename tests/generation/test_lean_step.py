"""LeanStep: the model's own decode-step logits, bit for bit, for every layer shape it accepts; None for the rest."""

from __future__ import annotations

import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    LlamaConfig,
    MistralConfig,
    Qwen2Config,
    Qwen3Config,
)

from tellkit.generation.decode import Decoder
from tellkit.generation.lean_step import LeanStep
from tellkit.generation.linear_pack import packed_linears

SIZE = {"vocab_size": 96, "hidden_size": 48, "intermediate_size": 80, "num_hidden_layers": 2,
        "num_attention_heads": 6, "num_key_value_heads": 2, "max_position_embeddings": 256}


def _model(config_cls, **extra):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config_cls(**SIZE, **extra), attn_implementation="sdpa")
    with torch.no_grad():  # larger than the init so that greedy outputs vary from token to token
        for param in model.parameters():
            if param.dim() > 1:
                param.normal_(0, 0.3)
    return model.eval()


def _decode(model, prompts, slots, step, eos=-1):
    logits = []

    def pick(x):
        logits.append(x.clone())
        return x.argmax(-1)

    decoder = Decoder(model, max_new_tokens=10, slots=slots, eos_ids={eos}, pick=pick, step=step)
    with torch.inference_mode(), packed_linears(model, rows_hint=slots):
        return decoder.run(prompts), logits


@pytest.mark.parametrize("config_cls,extra", [(LlamaConfig, {"tie_word_embeddings": True}),
                                              (MistralConfig, {"sliding_window": None}),
                                              (Qwen2Config, {})])  # Qwen2: q/k/v with bias
def test_lean_step_logits_equal_the_models_forward(config_cls, extra):
    model = _model(config_cls, **extra)
    torch.manual_seed(1)
    shared = torch.randint(6, 96, (9,)).tolist()  # a shared prefix, then prompts of different lengths
    prompts = [shared + torch.randint(6, 96, (n,)).tolist() for n in (3, 11, 1, 7, 5)]
    eos = _decode(model, prompts, 1, None)[0][1][3]  # a token the outputs hold: rows end at different steps
    for slots in (1, 2, 5):  # one row (no padding mask), refilled slots, all at once
        lean = LeanStep.build(model, rows=slots)  # oneDNN's packing depends on the row hint: the same as generate's
        assert lean is not None
        want_tokens, want_logits = _decode(model, prompts, slots, None, eos)
        tokens, logits = _decode(model, prompts, slots, lean, eos)
        assert tokens == want_tokens
        assert len(logits) == len(want_logits) > len(prompts)
        assert all(torch.equal(a, b) for a, b in zip(logits, want_logits)), slots
    assert len({len(t) for t in want_tokens}) > 1  # EOS ends rows at different steps


def test_lean_step_declines_what_it_does_not_compute():
    from peft import LoraConfig, get_peft_model

    assert LeanStep.build(_model(Qwen3Config), rows=2) is None  # q/k norms: not the Llama layer
    eager = AutoModelForCausalLM.from_config(LlamaConfig(**SIZE), attn_implementation="eager")
    assert LeanStep.build(eager, rows=2) is None
    assert LeanStep.build(_model(LlamaConfig).to(torch.bfloat16), rows=2) is None
    peft = get_peft_model(_model(LlamaConfig), LoraConfig(r=2, target_modules="all-linear"))
    assert LeanStep.build(peft, rows=2) is None  # unmerged adapter: the model's forward runs
