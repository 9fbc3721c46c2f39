"""The fused head + cross-entropy and the per-example attention of packed rows, against the plain model."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from tellkit.train import loss as loss_mod
from tellkit.train.attention import NAME
from tellkit.train.batches import collate_packed, collate_padded
from tellkit.train.loss import fuse_head, linear_cross_entropy, unfuse_head
from tests.helpers import lora_model

A = {"input_ids": list(range(5, 25)), "labels": [-100] * 6 + list(range(11, 25)), "task": 1}
B = {"input_ids": list(range(30, 42)), "labels": [-100] * 4 + list(range(34, 42)), "task": 0}
MODEL_KEYS = ("input_ids", "position_ids", "cu_seq_lens_q", "cu_seq_lens_k", "max_length_q", "max_length_k")


def test_packed_row_attends_within_each_example_only(tiny_model):
    """A packed row's logits equal each example's logits computed alone."""
    model = AutoModelForCausalLM.from_pretrained(tiny_model, attn_implementation=NAME).eval()
    batch = collate_packed([[A, B]])
    with torch.no_grad():
        logits = model(**{k: batch[k] for k in MODEL_KEYS}, use_cache=False).logits[0]
        alone_a = model(input_ids=torch.tensor([A["input_ids"]])).logits[0]
        alone_b = model(input_ids=torch.tensor([B["input_ids"]])).logits[0]
    assert torch.allclose(logits[:20], alone_a, atol=1e-5)
    assert torch.allclose(logits[20:32], alone_b, atol=1e-5)
    # per-example label shift: no position predicts across the boundary
    assert batch["shift_labels"][0, 19] == -100 and batch["shift_labels"][0, 18] == 24
    assert batch["token_source"][0].tolist() == [1] * 20 + [0] * 12


@pytest.mark.parametrize("chunk", [1 << 24, 64 * 7])  # one chunk; several (7 rows of the 64-token vocab)
def test_fused_loss_and_lora_gradients_equal_the_plain_loss(tiny_model, monkeypatch, chunk):
    monkeypatch.setattr(loss_mod, "CHUNK_ELEMENTS", chunk)
    batch = collate_padded(0)([[A, B]])
    targets = batch["shift_labels"]
    keep = targets != -100

    plain = lora_model(tiny_model)
    logits = plain(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    ref = torch.nn.functional.cross_entropy(logits[keep], targets[keep], reduction="none")
    ref.sum().backward()

    fused = lora_model(tiny_model)
    head = fuse_head(fused)
    assert head is not None
    hidden = fused(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    got = linear_cross_entropy(hidden[keep], head.weight, targets[keep])
    got.sum().backward()
    assert torch.allclose(got, ref, atol=1e-5)
    grads = {n: p.grad for n, p in plain.named_parameters() if p.requires_grad}
    assert grads and all(torch.allclose(p.grad, grads[n], atol=1e-5) for n, p in fused.named_parameters()
                         if p.requires_grad)
    unfuse_head(fused, head)
    assert fused(input_ids=batch["input_ids"]).logits.shape[-1] == head.weight.shape[0]


def test_head_with_logit_scaling_is_not_fused(tiny_model):
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    head = model.get_output_embeddings()
    original = model.forward

    def scaled(*a, **k):  # a model whose logits are not hidden @ W.T (e.g. soft-capped)
        out = original(*a, **k)
        out.logits = out.logits * 0.5
        return out

    model.forward = scaled
    assert fuse_head(model) is None and model.get_output_embeddings() is head
