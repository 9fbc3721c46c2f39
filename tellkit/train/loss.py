"""The training loss: output head + cross-entropy fused, in chunks, on the supervised positions only.

Why: the logits are the largest tensors of a small model's step (SmolLM2: 49,152 x 4 bytes per
token, against 576 x 4 for its hidden state), and a causal LM computes, keeps and backpropagates
them for every position, prompt and padding included. Here the model returns its final hidden
states (its head is swapped for `HiddenHead`, which keeps the same weight), and `linear_cross_entropy`
computes logits only for positions that have a label, `CHUNK_ELEMENTS` logits at a time: each
chunk's gradient with respect to the hidden states is computed in the forward pass and the logits
are freed at once (the approach of Liger's fused linear cross-entropy). The head is frozen under
LoRA, so no weight gradient is needed, and the FLOPs equal the unfused loss's.

The per-token losses come back unreduced, so one pass gives the total and the per-source (task /
general) sums.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CHUNK_ELEMENTS = 1 << 24  # logits per chunk: 64 MiB in fp32


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        rows = max(1, CHUNK_ELEMENTS // weight.shape[0])
        losses = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
        grad = torch.empty_like(hidden) if ctx.needs_input_grad[0] else None
        for s in range(0, hidden.shape[0], rows):
            h, t = hidden[s:s + rows], targets[s:s + rows]
            logits = (h @ weight.T).float()
            lse = torch.logsumexp(logits, dim=-1)
            losses[s:s + rows] = lse - logits.gather(1, t[:, None])[:, 0]
            if grad is not None:  # d loss_i / d logits = softmax - onehot, computed in place
                probs = logits.sub_(lse[:, None]).exp_()
                probs[torch.arange(len(t), device=t.device), t] -= 1.0
                grad[s:s + rows] = (probs.to(weight.dtype) @ weight).to(hidden.dtype)
        ctx.save_for_backward(grad)
        return losses

    @staticmethod
    def backward(ctx, grad_losses: torch.Tensor):
        (grad,) = ctx.saved_tensors
        return grad * grad_losses[:, None].to(grad.dtype), None, None


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-position cross-entropy of softmax(hidden @ weight.T) against targets (no -100 in targets)."""
    if weight.requires_grad:  # a trained head (not LoRA's default): the plain, unfused loss
        return F.cross_entropy((hidden @ weight.T).float(), targets, reduction="none")
    return _LinearCrossEntropy.apply(hidden, weight, targets)


class HiddenHead(nn.Module):
    """Stands in for a causal LM's output head and returns its input, the final hidden states; the
    head's weight stays registered under the same name, so tying and state dicts are unchanged."""

    def __init__(self, head: nn.Linear):
        super().__init__()
        self.weight = head.weight
        self.head = [head]  # a list: not a submodule, so parameters are not listed twice

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden


def fuse_head(model) -> nn.Module | None:
    """Swap the output head of `model` (a causal LM, PEFT-wrapped or not) for a HiddenHead, when the
    logits are exactly hidden @ head.weight.T (no bias, soft-capping or scaling: checked on a tiny
    input); return the original head (give it back with `unfuse_head`), or None when not fused."""
    head = model.get_output_embeddings()
    if not isinstance(head, nn.Linear) or head.bias is not None or head.weight.requires_grad:
        return None
    ids = torch.arange(2, 10, device=head.weight.device)[None] % head.weight.shape[0]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=ids, use_cache=False).logits
        model.set_output_embeddings(HiddenHead(head))
        hidden = model(input_ids=ids, use_cache=False).logits
    model.train(was_training)
    if hidden.shape[-1] == head.weight.shape[1] and torch.allclose(hidden @ head.weight.T, logits,
                                                                   rtol=1e-3, atol=1e-3):
        return head
    model.set_output_embeddings(head)
    return None


def unfuse_head(model, head: nn.Module | None) -> None:
    if head is not None:
        model.set_output_embeddings(head)
