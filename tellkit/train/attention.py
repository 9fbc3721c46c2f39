"""Attention over a packed row, example by example (the "tellkit_varlen" attention implementation).

Why: transformers reads a packed row's restarting position ids as a block-diagonal mask and runs
SDPA over the whole row with that mask, which materialises a (row x row) mask and, on CPU, the
(heads x row x row) scores of the math kernel: quadratic in the row, although each example only
attends to itself. Here every example of the row gets its own causal SDPA call (flash kernel, no
mask), so attention costs the sum of the examples' squares, and no memory grows with the row.

The segments come as `cu_seq_lens_q` (tellkit/train/batches.py), the flash-attention varlen
convention: on a GPU with flash-attn installed, `flash_attention_2` consumes the very same batch.
Without those keys (generation, a padded batch) this is plain SDPA.
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

NAME = "tellkit_varlen"


def varlen_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                     cu_seq_lens_q: torch.Tensor | None = None, **kwargs):
    if cu_seq_lens_q is None or query.shape[0] != 1:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, **kwargs)
    kwargs = {k: v for k, v in kwargs.items() if k not in ("cu_seq_lens_k", "max_length_q", "max_length_k",
                                                             "is_causal", "position_ids")}
    window = getattr(module, "sliding_window", None)
    bounds = cu_seq_lens_q.tolist()
    outs = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        mask = None
        if window and b - a > window:  # a sliding-window layer: causal and at most `window` back
            i = torch.arange(b - a, device=query.device)
            mask = ((i[:, None] >= i[None, :]) & (i[:, None] - i[None, :] < window))[None, None]
        out, _ = sdpa_attention_forward(module, query[:, :, a:b], key[:, :, a:b], value[:, :, a:b], mask,
                                        dropout=dropout, scaling=scaling, is_causal=mask is None, **kwargs)
        outs.append(out)
    return torch.cat(outs, dim=1), None  # (batch, tokens, heads, head_dim), as the models expect


def _mask(*args, **kwargs):
    """No mask for a packed row: the attention above reads the segments instead. A padded batch
    (packing off) keeps SDPA's own mask, so this only answers for rows without padding."""
    if kwargs.get("attention_mask") is not None:
        return sdpa_mask(*args, **kwargs)
    return None


AttentionInterface.register(NAME, varlen_attention)
AttentionMaskInterface.register(NAME, _mask)


def training_attention(packing: bool, half: bool = True) -> str:
    """The attention implementation training uses: flash-attn's varlen kernel on a GPU that has it when
    training computes in 16 bits (`half`: bf16/fp16 weights or autocast; flash-attn has no fp32 kernel),
    else ours for packed rows, else SDPA."""
    if half and torch.cuda.is_available():
        try:
            import flash_attn  # noqa: F401

            return "flash_attention_2"
        except ImportError:
            pass
    return NAME if packing else "sdpa"
