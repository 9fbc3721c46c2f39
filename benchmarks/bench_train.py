"""Training speed and memory, side by side: tellkit, the plain HF path it replaced, and TRL's SFTTrainer.

    python benchmarks/bench_train.py --model smollm2-135m-instruct --shape 8x512      # every arm, ~25 min
    python benchmarks/bench_train.py --model smollm2-135m-instruct --sweep            # tellkit, rows 1/2/4/8 x 512/1024
    python benchmarks/bench_train.py                                                  # tiny random model, ~1 min

TRL is an optional dependency of this benchmark only: `pip install trl==1.16.0` (without it the TRL
arms are skipped and say so).

Every arm trains the same pre-tokenized data: examples of max_length/4 tokens (the first 20% a
masked prompt, the rest supervised), `rows x 4` examples per optimizer step, so a micro-batch is
always rows x max_length real tokens and no arm pads (the comparison is of the training step, not of
the batching). Arms:
- tellkit: `train_mixture` (one padding-free row, per-example attention, fused loss on supervised
  positions, MLP products and norm outputs recomputed in the backward pass: train/lean.py); `-keep`:
  the same without lean.py (what tellkit did before it); `+ckpt`: with train.gradient_checkpointing;
- hf-packed: what tellkit did before (rows of max_length holding 4 examples, position-id restarts, so
  transformers builds a block-diagonal mask; the model's own loss over full-vocabulary logits);
- trl-padded / trl-packed (bfd): TRL's SFTTrainer with its defaults (gradient checkpointing on) and
  with it off (`-nockpt`); completion-only loss, the same LoRA.
Each arm runs in its own process (peak RSS is that process's; on GPU, max_memory_allocated); tok/s
counts the steps after the first (warm-up). `--dtype bf16` trains every arm under bf16 autocast (fp32
weights), `fp32` (the default) without.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common

ARMS = ["tellkit", "tellkit-keep", "tellkit+ckpt", "hf-packed", "trl-padded", "trl-padded-nockpt", "trl-packed", "trl-packed-nockpt"]
LR = 1e-3
LORA = {"r": 8, "lora_alpha": 16, "lora_dropout": 0.0, "target_modules": "all-linear"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--shape", default="8x512", help="ROWSxMAX_LENGTH of one micro-batch")
    ap.add_argument("--steps", type=int, default=4, help="optimizer steps per arm (the first is warm-up)")
    ap.add_argument("--arms", default=",".join(ARMS))
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32", help="every arm: fp32, or bf16 autocast")
    ap.add_argument("--sweep", action="store_true", help="tellkit only, rows 1/2/4/8 x max_length 512/1024")
    ap.add_argument("--overlay", metavar="PNG", help="tellkit vs hf-packed per-step losses, same seed: plot to PNG")
    ap.add_argument("--arm", help=argparse.SUPPRESS)  # internal: run one arm in this process
    ap.add_argument("--model-path", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.arm:
        rows, length = map(int, a.shape.split("x"))
        print("RESULT " + json.dumps(run_arm(a.arm, a.model_path, rows, length, a.steps, a.dtype == "bf16")))
        return
    with tempfile.TemporaryDirectory(prefix="tellkit-bench-train-") as tmp:
        model_path = common.resolve(a.model, Path(tmp))
        cases = ([("tellkit", f"{r}x{n}") for n in (512, 1024) for r in (1, 2, 4, 8)] if a.sweep
                 else [("tellkit", a.shape), ("hf-packed", a.shape)] if a.overlay
                 else [(arm, a.shape) for arm in a.arms.split(",")])
        results = [child(arm, shape, model_path, a.steps, a.dtype) for arm, shape in cases]
    print(f"\nmachine: {common.machine()}; {cpu_flags()}; model {a.model}, {a.dtype}, {a.steps} steps per arm\n")
    if a.overlay:
        overlay(results, a.overlay)
    print("| arm | micro-batch | examples/step | dtype | gradient ckpt | real tok/s | peak memory GiB "
          "| tellkit's estimate GiB | vs tellkit tok/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    base = next((r for r in results if r.get("arm") == "tellkit"), None)
    for r in results:
        if "skipped" in r:
            print(f"| {r['arm']} | {r['shape']} | | | | skipped: {r['skipped']} | | | |")
            continue
        rel = f"{r['tok_s'] / base['tok_s']:.2f}x" if base and r["shape"] == base["shape"] else ""
        est = f"{r['estimate_gib']:.2f}" if r.get("estimate_gib") else ""
        print(f"| {r['arm']} | {r['shape']} | {r['examples']} | {r['dtype']} | {r['ckpt']} | {r['tok_s']:.1f} "
              f"| {r['peak_gib']:.2f} | {est} | {rel} |")


def child(arm: str, shape: str, model_path: str, steps: int, dtype: str) -> dict:
    """One arm in a fresh process, so its peak memory is its own."""
    cmd = [sys.executable, __file__, "--arm", arm, "--shape", shape, "--model-path", model_path, "--steps", str(steps),
           "--dtype", dtype]
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        return {"arm": arm, "shape": shape, "skipped": (p.stderr.strip().splitlines() or ["failed"])[-1][:120]}
    out = json.loads(line[7:])
    print(f"{arm} {shape}: {out.get('tok_s', 0):.1f} tok/s, {out.get('peak_gib', 0):.2f} GiB", flush=True)
    return out


def overlay(results: list[dict], png: str) -> None:
    """The fused/varlen step against the plain HF step it replaced: same data, seed and schedule."""
    import numpy as np

    from tellkit.report.plots import plot_loss_curves

    fused, plain = (np.array(r["losses"]) for r in results)
    print(f"per-step loss, tellkit - hf-packed: max |diff| {np.abs(fused - plain).max():.2e} over {len(fused)} steps "
          f"(losses {plain[0]:.3f} -> {plain[-1]:.3f})")
    plot_loss_curves({"tellkit (fused loss, per-example attention)": list(enumerate(fused, 1)),
                      "plain HF (full logits, block-diagonal mask)": list(enumerate(plain, 1))}, png,
                     title="Same run, two training steps: per-step loss")


def cpu_flags() -> str:
    import torch

    flags = set(Path("/proc/cpuinfo").read_text().split("flags")[1].split("\n")[0].split()) if Path("/proc/cpuinfo").exists() else set()
    want = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"CPU flags {'/'.join(want) or 'none of avx2/avx512'}; {gpu}"


def examples(rows: int, length: int, steps: int, vocab: int) -> list[dict]:
    import numpy as np

    rng = np.random.default_rng(0)
    n, prompt = length // 4, length // 20
    out = []
    for _ in range(rows * 4 * steps):
        ids = rng.integers(3, vocab, n).tolist()
        out.append({"input_ids": ids, "labels": [-100] * prompt + ids[prompt:]})
    return out


class StepTimes:
    """Wall time at the end of each optimizer step (a TrainerCallback, built lazily)."""

    def __new__(cls):
        from transformers import TrainerCallback

        class _Times(TrainerCallback):
            def __init__(self):
                self.t, self.losses = [], []

            def on_step_end(self, args, state, control, **kw):
                self.t.append(time.perf_counter())

            def on_log(self, args, state, control, logs=None, **kw):
                if logs and "loss" in logs:
                    self.losses.append(float(logs["loss"]))

        return _Times()


def run_arm(arm: str, model_path: str, rows: int, length: int, steps: int, bf16: bool) -> dict:
    import torch

    from tellkit.models import load_tokenizer

    vocab = load_tokenizer(model_path).vocab_size
    data = examples(rows, length, steps, vocab)
    times = StepTimes()
    if arm.startswith("tellkit"):
        train_tellkit(model_path, data, rows * 4, length, steps, "ckpt" in arm, times, bf16, keep="keep" in arm)
    elif arm == "hf-packed":
        train_hf_packed(model_path, data, rows, length, steps, times, bf16)
    else:
        train_trl(model_path, data, rows, length, steps, packed="packed" in arm,
                  ckpt=not arm.endswith("nockpt"), times=times, bf16=bf16)
    dtype = "bf16 autocast" if bf16 else "fp32"
    per_step = rows * length  # every example is real: no arm pads
    tok_s = per_step * (len(times.t) - 1) / (times.t[-1] - times.t[0])
    peak = (torch.cuda.max_memory_allocated() if torch.cuda.is_available()
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**30
    return {"arm": arm, "shape": f"{rows}x{length}", "examples": rows * 4, "tok_s": tok_s, "peak_gib": peak,
            "estimate_gib": getattr(times, "estimate_gib", None), "losses": times.losses,
            "dtype": dtype, "ckpt": "ckpt" in arm and not arm.endswith("nockpt") or arm in ("trl-padded", "trl-packed")}


def train_tellkit(model_path, data, batch_size, length, steps, ckpt, times, bf16, keep) -> None:
    import numpy as np
    from datasets import Dataset

    import tellkit.train.trainer as tt
    from tellkit.config import Config
    from tellkit.mix import Mixture

    ds = Dataset.from_list([{**ex, "n_tokens": len(ex["input_ids"])} for ex in data])
    mixture = Mixture(task=ds, general=None, order=np.stack([np.zeros(len(ds)), np.arange(len(ds))], 1).astype(np.int64))
    cfg = Config.model_validate({
        "model": {"name": model_path}, "task": {"path": "unused.jsonl"}, "mix": {"method": "sft"},
        "lora": {"r": LORA["r"], "alpha": LORA["lora_alpha"], "dropout": 0.0},
        "train": {"max_steps": steps, "batch_size": batch_size, "max_length": length, "lr": LR,
                  "scheduler": "linear", "warmup_ratio": 0.0, "save_steps": 10_000, "gradient_checkpointing": ckpt,
                  "bf16": bf16, "seed": 0}})
    from tellkit.train.memory import ModelShape, estimate
    from tellkit.train.plan import plan_training

    plan = plan_training(cfg, mixture)
    times.estimate_gib = estimate(ModelShape.load(model_path), cfg, plan.micro_tokens_max, budget=(64, "", "cpu")).total_gib
    tt.Progress = lambda tokens: times  # our step clock instead of the progress bar (one arm per process)
    if keep:  # autograd keeps every activation, as before train/lean.py
        tt.lean_activations = lambda model: 0
        tt.recompute = lambda *a, **k: contextlib.nullcontext()
    with tempfile.TemporaryDirectory() as out:
        tt.train_mixture(cfg, model_path, mixture, Path(out), plan=plan)


def _lora_model(model_path):
    from peft import LoraConfig, get_peft_model

    from tellkit.models import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(model_path, dtype="float32")
    model.config.use_cache = False
    return get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **LORA)), tok


def train_hf_packed(model_path, data, rows, length, steps, times, bf16) -> None:
    """tellkit before this change: max_length rows of 4 examples, block-diagonal SDPA mask from the
    position-id restarts, the model's loss on full logits."""
    import torch
    from transformers import Trainer, TrainingArguments

    from transformers import set_seed

    set_seed(0)  # as tellkit does before the LoRA init: the same initial adapter
    model, _ = _lora_model(model_path)
    packed = []
    for i in range(0, len(data), 4):
        group = data[i:i + 4]
        packed.append({"input_ids": sum((e["input_ids"] for e in group), []),
                       "labels": sum((e["labels"] for e in group), []),
                       "position_ids": sum((list(range(len(e["input_ids"]))) for e in group), [])})

    def collate(batch):
        return {k: torch.tensor([b[k] for b in batch]) for k in ("input_ids", "labels", "position_ids")}

    args = TrainingArguments(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=rows, max_steps=steps,
                             learning_rate=LR, lr_scheduler_type="linear", logging_steps=1, use_cpu=not torch.cuda.is_available(), report_to="none",
                             save_strategy="no", disable_tqdm=True, remove_unused_columns=False, bf16=bf16)
    class InOrder(Trainer):  # the rows in data order, as tellkit trains the mixture's order
        def _get_train_sampler(self, train_dataset=None):
            return torch.utils.data.SequentialSampler(self.train_dataset)

    InOrder(model=model, args=args, train_dataset=packed, data_collator=collate, callbacks=[times]).train()


def train_trl(model_path, data, rows, length, steps, packed, ckpt, times, bf16) -> None:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from tellkit.models import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(model_path, dtype="float32")
    ds = Dataset.from_list([{"input_ids": e["input_ids"], "completion_mask": [int(x != -100) for x in e["labels"]]}
                            for e in data])
    args = SFTConfig(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=rows if packed else rows * 4,
                     max_steps=steps, learning_rate=LR, max_length=length, packing=packed,
                     packing_strategy="bfd", completion_only_loss=True, gradient_checkpointing=ckpt,
                     use_cpu=not torch.cuda.is_available(), report_to="none", save_strategy="no",
                     disable_tqdm=True, bf16=bf16)
    SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok,
               peft_config=LoraConfig(task_type="CAUSAL_LM", **LORA), callbacks=[times]).train()


if __name__ == "__main__":
    main()
