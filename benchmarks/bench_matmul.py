"""Matmul peak GFLOP/s of this machine (fp32, bf16) and the share of it a LoRA training step reaches.

    python benchmarks/bench_matmul.py                      # SmolLM2-135M, 1 packed row of 1024, ~3 min
    python benchmarks/bench_matmul.py --model tiny         # quick smoke run (tiny matmuls: low fractions)

Peak: best of several torch.matmul calls over square and model-shaped operands.
Training step: tellkit's (LoRA r=8 on all linear layers; one padding-free row of
rows x max_length tokens of varied-length examples, 80% supervised; per-example
causal attention; the fused head + cross-entropy on supervised positions),
forward + backward + AdamW, bf16 autocast as with train.bf16; warm-up excluded.

FLOPs (counted by the script, printed under the table):
  positions x (4 N_lin + 6 N_lora)   frozen linears: forward 2N, input gradient 2N;
                                     LoRA A/B: forward 2N, backward 4N
  + supervised x 4 V d               the head, only where a label is
  + 6 n_layers d_attn sum(n_i^2)     causal attention per example (QK^T, AV), fwd + bwd
The usual "6 x params x tokens" would count weight gradients the frozen base never computes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import common
import numpy as np
import torch


def peak_gflops(dtype: torch.dtype, shapes, reps: int = 5) -> float:
    best = 0.0
    for m, k, n in shapes:
        a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
        torch.matmul(a, b)  # warm-up
        calls = max(1, int(2e10 / (2 * m * k * n)))  # ~20 GFLOP per timing
        for _ in range(reps):
            t = time.perf_counter()
            for _ in range(calls):
                torch.matmul(a, b)
            best = max(best, 2 * m * k * n * calls / (time.perf_counter() - t) / 1e9)
    return best


def train_step_rate(model_path: str, bf16: bool, rows: int, max_length: int, steps: int, warmup: int) -> dict:
    """tellkit's training step on one micro-batch of rows x max_length tokens: a padding-free row of
    varied-length examples, per-example attention, the fused loss on the supervised positions."""
    from peft import LoraConfig, get_peft_model

    from tellkit.models import load_model_and_tokenizer
    from tellkit.train.attention import NAME
    from tellkit.train.batches import collate_packed
    from tellkit.train.loss import fuse_head, linear_cross_entropy

    torch.manual_seed(0)
    base, tok = load_model_and_tokenizer(model_path, dtype="float32")
    base.config.use_cache = False
    base.set_attn_implementation(NAME)
    c = base.config
    n_lin = sum(m.weight.numel() for n, m in base.named_modules() if isinstance(m, torch.nn.Linear) and "lm_head" not in n)
    model = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear",
                                            task_type="CAUSAL_LM"))
    head = fuse_head(model)
    n_lora = sum(p.numel() for p in model.parameters() if p.requires_grad)
    rng = np.random.default_rng(0)
    lengths = np.clip(rng.lognormal(np.log(150), 1.0, 4000), 8, max_length).astype(np.int64)
    cut = int(np.searchsorted(np.cumsum(lengths), rows * max_length))
    lengths = np.append(lengths[:cut], rows * max_length - lengths[:cut].sum())  # exactly rows x max_length
    examples = [{"input_ids": (ids := rng.integers(3, c.vocab_size, int(n)).tolist()),
                 "labels": [-100] * (int(n) // 5) + ids[int(n) // 5:], "task": 1} for n in lengths if n > 0]
    batch = collate_packed([examples])
    targets = batch.pop("shift_labels")[0]
    keep = targets != -100
    inputs = {k: batch[k] for k in ("input_ids", "position_ids", "cu_seq_lens_q", "cu_seq_lens_k",
                                    "max_length_q", "max_length_k")}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    times = []
    for step in range(warmup + steps):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            hidden = model(**inputs).logits[0]
            loss = linear_cross_entropy(hidden[keep], head.weight, targets[keep]).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
        if step >= warmup:
            times.append(time.perf_counter() - t)
    positions, supervised = rows * max_length, int(keep.sum())
    d_attn = c.num_attention_heads * getattr(c, "head_dim", c.hidden_size // c.num_attention_heads)
    flops = (positions * (4 * n_lin + 6 * n_lora) + supervised * 4 * head.weight.numel()
             + 6 * c.num_hidden_layers * d_attn * int((lengths.astype(np.float64) ** 2).sum()))
    step_s = float(np.median(times))
    return {"step_s": step_s, "flops": flops, "real": positions, "positions": positions, "n_lin": n_lin,
            "n_lora": n_lora, "layers": c.num_hidden_layers, "d_attn": d_attn, "supervised": supervised}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--rows", type=int, default=1)
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model_path = common.resolve(a.model, Path(tmp))
        t = a.rows * a.max_length
        shapes = [(2048, 2048, 2048), (t, 576, 1536), (t, 1536, 576), (t, 576, 4096)]
        print(f"machine: {common.machine()}; model: {a.model}\n")
        print("| precision | matmul peak GFLOP/s | LoRA train step s | positions (real tokens) / step "
              "| step TFLOP (formula) | achieved GFLOP/s | fraction of peak | real tok/s |")
        print("|---|---|---|---|---|---|---|---|")
        for name, dtype, bf16 in (("fp32", torch.float32, False), ("bf16 autocast", torch.bfloat16, True)):
            peak = peak_gflops(dtype, shapes)
            r = train_step_rate(model_path, bf16, a.rows, a.max_length, a.steps, a.warmup)
            achieved = r["flops"] / r["step_s"] / 1e9
            print(f"| {name} | {peak:.0f} | {r['step_s']:.2f} | {r['positions']} ({r['real']}) "
                  f"| {r['flops'] / 1e12:.2f} | {achieved:.0f} | {achieved / peak:.0%} "
                  f"| {r['real'] / r['step_s']:.0f} |", flush=True)
        print(f"\nN_lin = {r['n_lin']:,} (without the head), N_lora = {r['n_lora']:,}, n_layers = {r['layers']}, "
              f"d_attn = {r['d_attn']}, {r['supervised']} supervised positions; FLOPs = positions x (4 N_lin + 6 N_lora)"
              " + supervised x 4 V d (head: forward, input gradient) + 6 n_layers d_attn sum(n_i^2) (causal attention "
              "per example: QK^T and AV, forward and backward)")


if __name__ == "__main__":
    main()
