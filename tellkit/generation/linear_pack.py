"""oneDNN-prepacked linear layers on CPU for the duration of a generation.

A decode step multiplies a handful of rows by every weight matrix. MKL's fp32
GEMM, which ``torch.nn.Linear`` uses on CPU, reaches 5-8 GB/s of weight
traffic on such skinny shapes here, while oneDNN with weights reordered once
into its blocked layout reaches 13-17 GB/s (benchmarks/bench_eval.py prints the
measurement). This is the reorder ``torch.compile``'s CPU backend applies when it
freezes weights, done here without compiling. Results agree to float rounding
(about 1e-6), which leaves greedy outputs unchanged (checked token for token in
the tests and the benchmark).

Generation runs under ``torch.inference_mode``, so weights cannot change while
packed. The packed copies cost one extra copy of the fp32 linear weights (freed
on exit); models whose linear weights exceed a quarter of the RAM are left unpacked.
"""

from __future__ import annotations

import contextlib
import os
import types

import torch


def _linears(model) -> list[torch.nn.Linear]:
    return [m for m in model.modules() if type(m) is torch.nn.Linear and m.weight.dtype == torch.float32
            and m.weight.device.type == "cpu"]


def can_pack(model) -> bool:
    """True when oneDNN packing is available and a packed copy of `model`'s fp32 CPU linears fits the RAM budget."""
    linears = _linears(model)
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    size = sum(m.weight.numel() * 4 for m in linears)
    return (bool(linears) and size <= ram // 4 and torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.mkldnn, "_reorder_linear_weight") and hasattr(torch.ops.mkldnn, "_linear_pointwise"))


def pack(weight: torch.Tensor, rows_hint: int) -> torch.Tensor:
    """`weight` [out, in] reordered into oneDNN's blocked layout for inputs of about `rows_hint` rows."""
    return torch.ops.mkldnn._reorder_linear_weight(weight.detach(), rows_hint)


def packed_linear(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")


def _packed_forward(self, x: torch.Tensor) -> torch.Tensor:
    # Decode steps (one new token per row) only: oneDNN builds a kernel per input shape, and prompts (every
    # length a new shape) would pay that build each time while gaining nothing (MKL is efficient on tall inputs).
    if x.dtype != torch.float32 or torch.is_autocast_enabled("cpu") or x.dim() < 3 or x.shape[-2] != 1:
        return torch.nn.functional.linear(x, self.weight, self.bias)
    return packed_linear(x, self._tellkit_packed, self.bias)


@contextlib.contextmanager
def packed_linears(model, rows_hint: int = 8):
    """Within the block, every fp32 CPU nn.Linear of `model` multiplies through a oneDNN-packed weight."""
    patched = []
    if can_pack(model):
        for module in _linears(model):
            module._tellkit_packed = pack(module.weight, rows_hint)
            module.forward = types.MethodType(_packed_forward, module)
            patched.append(module)
    try:
        yield len(patched)
    finally:
        for module in patched:
            del module.forward, module._tellkit_packed
