"""Training and generation precision: what "auto" picks, and explicit settings win."""

from __future__ import annotations

import torch

from tellkit.train import precision


def test_generation_is_fp32_on_cpu_unless_asked(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert precision.use_bf16("auto")  # native bf16 CPU: training autocasts
    assert not precision.eval_bf16("auto", "auto")  # generation keeps the exact, faster fp32 decoder
    assert precision.eval_bf16(True, False) and not precision.eval_bf16(False, True)


def test_generation_follows_training_on_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert precision.eval_bf16("auto", "auto")
    assert not precision.eval_bf16("auto", False)


def test_scoring_follows_training_even_on_cpu(monkeypatch):
    # lm-eval's log-likelihoods are whole batches through one forward pass: bf16 pays there, unlike decoding
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert precision.score_bf16("auto", "auto") and not precision.score_bf16("auto", False)
    assert precision.score_bf16(True, False) and not precision.score_bf16(False, True)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    assert not precision.score_bf16("auto", "auto")  # emulated bf16 would only be slower
