"""Which precision training and generation run in, decided without importing the trainer (the memory plan needs it
before any weights load, and `tellkit validate` should stay quick)."""

from __future__ import annotations

import torch


def use_bf16(setting) -> bool:
    """train.bf16: "auto" is bf16 autocast where the hardware computes bf16 natively."""
    if setting != "auto":
        return bool(setting)
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    # Native bf16 only (AVX512_BF16 / AMX): there a bf16-autocast LoRA step of SmolLM2-135M is
    # ~1.5x faster than fp32 (benchmarks/bench_matmul.py); plain AVX512 would only emulate bf16.
    return bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)())


def eval_bf16(eval_setting, train_setting) -> bool:
    """eval.bf16: "auto" generates in fp32 on CPU and, on a GPU, in bf16 when training ran in it."""
    if eval_setting != "auto":
        return bool(eval_setting)
    return torch.cuda.is_available() and use_bf16(train_setting)


def score_bf16(eval_setting, train_setting) -> bool:
    """eval.bf16 for scoring (general ability, lm-eval's log-likelihoods): "auto" is bf16 autocast wherever
    training used it. Scoring is whole batches through one forward pass, compute-bound unlike decoding, so
    bf16 pays on a CPU too: the default suite at 200 items ran 103 s -> 43 s on 2 AVX512-bf16 cores,
    with 2 of 200 WordNet answers and the 4th decimal of bits per byte changed (docs/general-ability.md)."""
    if eval_setting != "auto":
        return bool(eval_setting)
    return use_bf16(train_setting)
