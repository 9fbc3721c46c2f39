"""One decode step of a Llama-shaped model on CPU, without the framework's per-step overhead.

A CPU decode step of SmolLM2 at 40 rows spends about a quarter of its time
outside the matrix products: module calls, the mask and cache machinery, and
three projection GEMMs where one would do (torch.profiler, benchmarks/README.md).
This step runs the same arithmetic as the model's own forward, op for op, with:

* q/k/v and gate/up each fused into one oneDNN-packed GEMM (bitwise the same
  columns as separate packed GEMMs: the reduction over the input is unchanged);
* RoPE applied to the query and key heads in one pass;
* the padding mask built once per step and the keys/values written straight
  into the SlotCache buffers;
* no nn.Module calls on the hot path.

Its logits equal the model's forward through packed linears bit for bit
(tests/evaluate/test_lean_step.py). It covers decoder layers of exactly the Llama
shape (see `LeanStep.build`); any other model, an unmerged adapter, bf16 or a GPU
take the model's own forward.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F
from transformers.integrations.sdpa_attention import pack_gqa

from .kvslots import SlotCache
from .linear_pack import can_pack, pack, packed_linear

# Decoder layers computing x + attn(norm(x)), then x + mlp(norm(x)), with RoPE on q and k, a gated MLP and
# LlamaRMSNorm's formula; each is checked bit for bit against the model's forward in the tests.
LLAMA_SHAPED = {"LlamaDecoderLayer", "MistralDecoderLayer", "Qwen2DecoderLayer"}
_LAYER_PARTS = {"self_attn", "mlp", "input_layernorm", "post_attention_layernorm"}


def _rms(norm, x: torch.Tensor) -> torch.Tensor:
    # LlamaRMSNorm.forward, op for op (fp32 in, fp32 out).
    return norm.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon))


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _plain(*modules) -> bool:
    return all(type(m) is torch.nn.Linear and m.weight.dtype == torch.float32 and m.weight.device.type == "cpu"
               for m in modules)


class _Layer:
    def __init__(self, layer, rows: int):
        attn, mlp = layer.self_attn, layer.mlp
        self.norm1, self.norm2, self.act = layer.input_layernorm, layer.post_attention_layernorm, mlp.act_fn
        self.head_dim, self.scaling, self.groups = attn.head_dim, attn.scaling, attn.num_key_value_groups
        self.nq, self.nkv = attn.q_proj.out_features, attn.k_proj.out_features
        self.qkv = pack(torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]), rows)
        self.qkv_bias = (torch.cat([attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias])
                         if attn.q_proj.bias is not None else None)
        self.o, self.o_bias = pack(attn.o_proj.weight, rows), attn.o_proj.bias
        self.gate_up = pack(torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]), rows)
        self.gate_up_bias = (torch.cat([mlp.gate_proj.bias, mlp.up_proj.bias])
                             if mlp.gate_proj.bias is not None else None)
        self.inter = mlp.gate_proj.out_features
        self.down, self.down_bias = pack(mlp.down_proj.weight, rows), mlp.down_proj.bias

    def __call__(self, h, cos, sin, mask, cache_layer, end: int) -> torch.Tensor:
        # `end`: the buffer column just past the window, where this step's key and value go.
        rows, d = h.shape[0], self.head_dim
        qkv = packed_linear(_rms(self.norm1, h), self.qkv, self.qkv_bias)  # [rows, 1, nq + 2 nkv]
        qk = qkv[..., : self.nq + self.nkv].view(rows, 1, -1, d).transpose(1, 2)
        qk = (qk * cos) + (_rotate_half(qk) * sin)  # RoPE on all query and key heads at once
        n_q_heads = self.nq // d
        # The query in the model's own memory layout: SDPA's CPU kernel rounds differently for other strides.
        q, k = qk[:, :n_q_heads].contiguous(), qk[:, n_q_heads:]
        v = qkv[..., self.nq + self.nkv:].view(rows, 1, -1, d).transpose(1, 2)
        cache_layer.k_buf[:, :, end - 1: end] = k
        cache_layer.v_buf[:, :, end - 1: end] = v
        keys, values = cache_layer.keys, cache_layer.values
        # What transformers' sdpa attention does for one query token (pack_gqa with a mask, enable_gqa without).
        if mask is None:
            out = F.scaled_dot_product_attention(q, keys, values, scale=self.scaling, enable_gqa=self.groups > 1)
        else:
            out = F.scaled_dot_product_attention(pack_gqa(q, self.groups), keys, values, attn_mask=mask,
                                                 scale=self.scaling)
        out = out.reshape(rows, -1, 1, d).transpose(1, 2).reshape(rows, 1, -1)
        h = h + packed_linear(out, self.o, self.o_bias)
        gate_up = packed_linear(_rms(self.norm2, h), self.gate_up, self.gate_up_bias)
        # act on a contiguous gate: vectorised and strided SiLU round differently in the last bit.
        product = self.act(gate_up[..., : self.inter].contiguous()) * gate_up[..., self.inter:]
        return h + packed_linear(product, self.down, self.down_bias)


class LeanStep:
    """`step(input_ids [rows, 1], positions [rows, 1], cache) -> logits [rows, vocab]` after `cache.advance(1)`."""

    def __init__(self, model, rows: int):
        inner = model.model
        self.embed, self.final_norm, self.rotary = inner.embed_tokens, inner.norm, inner.rotary_emb
        self.layers = [_Layer(layer, rows) for layer in inner.layers]
        self.head, self.head_bias = pack(model.lm_head.weight, rows), model.lm_head.bias

    @classmethod
    def build(cls, model, rows: int) -> LeanStep | None:
        """A lean step for `model`, or None when it is not a plain fp32 Llama-shaped decoder on CPU."""
        cfg = model.config
        layers = getattr(getattr(model, "model", None), "layers", None)
        if (not layers or getattr(cfg, "_attn_implementation", None) != "sdpa" or getattr(cfg, "pretraining_tp", 1) != 1
                or not _plain(getattr(model, "lm_head", None)) or not can_pack(model)):
            return None
        for layer in layers:
            attn, mlp = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
            if (type(layer).__name__ not in LLAMA_SHAPED or {n for n, _ in layer.named_children()} != _LAYER_PARTS
                    or {n for n, _ in attn.named_children()} != {"q_proj", "k_proj", "v_proj", "o_proj"}
                    or not _plain(attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj, mlp.gate_proj, mlp.up_proj,
                                  mlp.down_proj)):
                return None
        return cls(model, rows)

    @torch.inference_mode()
    def __call__(self, input_ids: torch.Tensor, positions: torch.Tensor, cache: SlotCache) -> torch.Tensor:
        h = self.embed.weight[input_ids]  # [rows, 1, hidden]
        cos, sin = self.rotary(h, positions)
        cos, sin = cos[:, None], sin[:, None]
        window = cache.window_mask()
        mask = None if bool(window.all()) else window.bool()[:, None, None, :]
        for layer, cache_layer in zip(self.layers, cache.layers):
            h = layer(h, cos, sin, mask, cache_layer, cache.end)
        return packed_linear(_rms(self.final_norm, h), self.head, self.head_bias)[:, -1]
