"""Gated MLPs that keep less for backward (train/lean.py): same loss and LoRA gradients, less kept."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tellkit.train import lean
from tellkit.train.lean import GatedProduct, lean_activations
from tests.helpers import lora_model


def _loss_and_grads(model, autocast=False):
    ids = torch.arange(3, 40)[None] % model.config.vocab_size
    model.zero_grad()
    with lean.recompute(autocast=autocast), torch.autocast("cpu", torch.bfloat16, enabled=autocast):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def _saved_bytes(model, monkeypatch, autocast=False) -> int:
    """Bytes of the activations autograd keeps for one forward inside recompute() (parameters excluded)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: set[int] = set()
    pack = lean._pack

    def counting(t):
        kept = pack(t)
        ptr = t.untyped_storage().data_ptr()
        if isinstance(kept, torch.Tensor) and ptr not in params and ptr not in seen:
            seen.add(ptr)
            seen_bytes.append(t.untyped_storage().nbytes())
        return kept

    seen_bytes: list[int] = []
    monkeypatch.setattr(lean, "_pack", counting)
    ids = torch.arange(3, 131)[None] % model.config.vocab_size
    with lean.recompute(autocast=autocast), torch.autocast("cpu", torch.bfloat16, enabled=autocast):
        model(input_ids=ids, labels=ids).loss
    monkeypatch.setattr(lean, "_pack", pack)
    return sum(seen_bytes)


@pytest.mark.parametrize("autocast", [False, True], ids=["fp32", "bf16-autocast"])
def test_lean_mlp_gives_the_same_loss_and_lora_gradients(tiny_model, monkeypatch, autocast):
    plain = lora_model(tiny_model)
    loss0, grads0 = _loss_and_grads(plain, autocast)
    kept0 = _saved_bytes(plain, monkeypatch, autocast)
    leaner = lora_model(tiny_model)
    assert lean_activations(leaner) == leaner.config.num_hidden_layers
    loss1, grads1 = _loss_and_grads(leaner, autocast)
    assert torch.equal(loss0, loss1)
    assert grads0.keys() == grads1.keys() and len(grads0) > 0
    for name, g in grads0.items():
        assert torch.equal(g, grads1[name]), name
    # per token and layer: act(gate) and the product (2 x MLP width) and the two norm outputs
    # (2 x hidden) are rebuilt in the backward pass, not kept
    # (under autocast: act(gate) and the product in bf16, and the five bf16 copies of the norm outputs
    # that the q/k/v and gate/up projections keep)
    c = leaner.config
    per_token = 4 * (2 * c.intermediate_size + 2 * c.hidden_size) if not autocast else \
        2 * (2 * c.intermediate_size + 5 * c.hidden_size)
    assert kept0 - _saved_bytes(leaner, monkeypatch, autocast) >= 128 * c.num_hidden_layers * per_token


def test_gated_product_gradients_match_autograd():
    g = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    u = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: GatedProduct.apply(a, b, nn.functional.silu), (g, u))
    assert torch.autograd.gradcheck(lambda a, b: GatedProduct.apply(a, b, nn.GELU("tanh")), (g, u))


def test_an_mlp_that_computes_something_else_keeps_its_forward():
    class Scaled(nn.Module):  # gated, but with an extra scale: the lean forward would be wrong here
        def __init__(self):
            super().__init__()
            self.gate_proj, self.up_proj, self.down_proj = nn.Linear(4, 6), nn.Linear(4, 6), nn.Linear(6, 4)
            self.act_fn = nn.SiLU()

        def forward(self, x):
            return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x) * 0.5)

    model = nn.Sequential(Scaled())
    assert lean_activations(model) == 0
    assert "forward" not in vars(model[0])
