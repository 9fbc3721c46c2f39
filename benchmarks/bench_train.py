"""Training speed and memory, side by side: tellkit, the plain HF path it replaced, and TRL's SFTTrainer.

    python benchmarks/bench_train.py --model smollm2-135m-instruct --shape 8x512      # every arm, ~25 min
    python benchmarks/bench_train.py --model smollm2-135m-instruct --sweep            # tellkit, rows 1/2/4/8 x 512/1024
    python benchmarks/bench_train.py                                                  # tiny random model, ~1 min
    python benchmarks/bench_train.py --model smollm2-135m-instruct --mixture --dtype bf16   # the real TELL mixture

TRL is an optional dependency of this benchmark only: `pip install -e '.[bench]'` (trl==1.16.0; without it
the TRL arms are skipped and say so).

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
`--mixture`: every arm instead trains the same real TELL mixture of variable-length examples, in the
same order: the order-extraction task (examples/orders.yaml) mixed into the Alpaca demo general data at
ratio 10, as tellkit tokenizes it (chat template, anchor), `--shape EXAMPLESxMAX_LENGTH` (default 8 x 512)
examples per optimizer step; TRL's padded arms pad each step's examples to the longest, its packed
arms pack them into rows of max_length (as many rows as hold a step's tokens). tok/s counts real
tokens only, the printed ratios are against TRL's default arm (padded, checkpointing on) and its
fastest arm.
Each arm runs in its own process (peak RSS is that process's; on GPU, max_memory_allocated); tok/s
counts the steps after the first (warm-up). tellkit's arms run as the `tellkit` command sets itself up
(`--tellkit-env command`, the default: the malloc it preloads, threads = the cores free at start, passive
OpenMP wait), the others as plain Python does (glibc's malloc unless LD_PRELOAD says otherwise, a thread
per core); `--tellkit-env same` runs every arm in this process's environment, for a step-only comparison.
The table prints each arm's malloc / threads / wait policy. `--dtype bf16` trains every arm under bf16 autocast (fp32
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
MIXTURE_ARMS = ["tellkit", "tellkit+ckpt", "trl-padded", "trl-padded-nockpt", "trl-packed", "trl-packed-nockpt"]
TRL_DEFAULT = "trl-padded"  # SFTTrainer's defaults: no packing, gradient checkpointing on
LR = 1e-3
WEIGHTS = "float32"  # every arm's frozen weights (gpu_check.py sets bfloat16 on a GPU, as tellkit's "auto" does)
LORA = {"r": 8, "lora_alpha": 16, "lora_dropout": 0.0, "target_modules": "all-linear"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--shape", default="8x512", help="ROWSxMAX_LENGTH of one micro-batch")
    ap.add_argument("--steps", type=int, default=4, help="optimizer steps per arm (the first is warm-up)")
    ap.add_argument("--arms", help=f"default: {','.join(ARMS)}; with --mixture {','.join(MIXTURE_ARMS)}")
    ap.add_argument("--mixture", action="store_true", help="every arm trains the real TELL mixture (variable lengths)")
    ap.add_argument("--tellkit-env", choices=["command", "same"], default="command",
                    help="command (default): tellkit's arms run as the `tellkit` command sets itself up (its "
                         "malloc, free-core threads, passive OpenMP wait), the others as plain Python; same: "
                         "every arm in this process's environment, with every core")
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32", help="every arm: fp32, or bf16 autocast")
    ap.add_argument("--sweep", action="store_true", help="tellkit only, rows 1/2/4/8 x max_length 512/1024")
    ap.add_argument("--overlay", metavar="PNG", help="tellkit vs hf-packed per-step losses, same seed: plot to PNG")
    ap.add_argument("--arm", help=argparse.SUPPRESS)  # internal: run one arm in this process
    ap.add_argument("--model-path", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)  # internal: the mixture's examples (JSON), --mixture
    a = ap.parse_args()
    if a.arm:
        rows, length = map(int, a.shape.split("x"))
        data = json.loads(Path(a.data).read_text()) if a.data else None
        print("RESULT " + json.dumps(run_arm(a.arm, a.model_path, rows, length, a.steps, a.dtype == "bf16", data)))
        return
    arms = (a.arms or ",".join(MIXTURE_ARMS if a.mixture else ARMS)).split(",")
    with tempfile.TemporaryDirectory(prefix="tellkit-bench-train-") as tmp:
        model_path = common.resolve(a.model, Path(tmp))
        data = None
        if a.mixture:
            per_step, length = map(int, a.shape.split("x"))
            examples = common.real_mixture_examples(Path(tmp) / "mixture", model_path, per_step * a.steps,
                                                    batch_size=per_step, max_length=length)
            data = Path(tmp) / "mixture-examples.json"
            data.write_text(json.dumps(examples))
            print(mixture_line(examples, per_step, length), flush=True)
        cases = ([("tellkit", f"{r}x{n}") for n in (512, 1024) for r in (1, 2, 4, 8)] if a.sweep
                 else [("tellkit", a.shape), ("hf-packed", a.shape)] if a.overlay
                 else [(arm, a.shape) for arm in arms])
        results = [child(arm, shape, model_path, a.steps, a.dtype, data, a.tellkit_env) for arm, shape in cases]
    from tellkit import allocator

    print(f"\nmachine: {common.machine()}; {common.cpu_flags()}; this process's malloc {allocator.kind()}; "
          f"model {a.model}, {a.dtype}, {a.steps} steps per arm; tellkit's arms: {a.tellkit_env} environment"
          f"{'; the real TELL mixture (orders + Alpaca demo, ratio 10)' if a.mixture else ''}\n")
    if a.overlay:
        overlay(results, a.overlay)
    print("| arm | micro-batch | examples/step | dtype | gradient ckpt | malloc / threads / OpenMP wait | real tok/s "
          "| peak memory GiB | tellkit's estimate GiB | vs tellkit tok/s | padding % |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    base = next((r for r in results if r.get("arm") == "tellkit"), None)
    for r in results:
        if "skipped" in r:
            print(f"| {r['arm']} | {r['shape']} | | | | | skipped: {r['skipped']} | | | | |")
            continue
        setup = f"{r['malloc']} / {r['threads']} / {r['wait']}" if "malloc" in r else ""
        rel = f"{r['tok_s'] / base['tok_s']:.2f}x" if base and "tok_s" in base and r["shape"] == base["shape"] else ""
        est = f"{r['estimate_gib']:.2f}" if r.get("estimate_gib") else ""
        pad = f"{r['padding']:.0%}" if r.get("padding") is not None else ""
        print(f"| {r['arm']} | {r['shape']} | {r['examples']} | {r['dtype']} | {r['ckpt']} | {setup} | {r['tok_s']:.1f} "
              f"| {r['peak_gib']:.2f} | {est} | {rel} | {pad} |")
    print("\n".join(versus_trl(results)))


def versus_trl(results: list[dict]) -> list[str]:
    """The issue's targets as ratios of arms measured in this one run: tellkit (and tellkit+ckpt) against
    TRL's default arm and its fastest arm; memory against TRL's default."""
    ok = {r["arm"]: r for r in results if "tok_s" in r}
    trl = [r for name, r in ok.items() if name.startswith("trl-")]
    if not trl or TRL_DEFAULT not in ok:
        return []
    default, fastest = ok[TRL_DEFAULT], max(trl, key=lambda r: r["tok_s"])
    lines = []
    for name in ("tellkit", "tellkit+ckpt"):
        if name in ok:
            r = ok[name]
            lines.append(f"{name}: {r['tok_s'] / default['tok_s']:.2f}x TRL's default ({TRL_DEFAULT}) tok/s at "
                         f"{r['peak_gib'] / default['peak_gib']:.2f}x its memory; {r['tok_s'] / fastest['tok_s']:.2f}x "
                         f"TRL's fastest arm ({fastest['arm']})")
    return lines


def mixture_line(examples: list[dict], per_step: int, length: int) -> str:
    import numpy as np

    n = np.array([len(e["input_ids"]) for e in examples])
    steps = n[: len(n) // per_step * per_step].reshape(-1, per_step)
    pad = 1 - steps.sum(1) / (steps.max(1) * per_step)  # what right-padding each step to its longest wastes
    return (f"mixture: {len(n)} examples ({sum(e['task'] for e in examples)} task), tokens p10/p50/p90/max "
            f"{np.percentile(n, 10):.0f}/{np.percentile(n, 50):.0f}/{np.percentile(n, 90):.0f}/{n.max()} "
            f"(max_length {length}), {steps.sum(1).mean():.0f} real tokens per step of {per_step} examples, "
            f"padded batches would be {pad.mean():.0%} padding")


def child(arm: str, shape: str, model_path: str, steps: int, dtype: str, data: Path | None = None,
          tellkit_env: str = "same") -> dict:
    """One arm in a fresh process, so its peak memory is its own."""
    cmd = [sys.executable, __file__, "--arm", arm, "--shape", shape, "--model-path", model_path, "--steps", str(steps),
           "--dtype", dtype, *(["--data", str(data)] if data else [])]
    # "same": every arm computes with every core (bench_contention.py measures the thread choice) and
    # this process's malloc and OpenMP wait policy; "command": tellkit's arms as a user's `tellkit train`.
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    if arm.startswith("tellkit") and tellkit_env == "command":
        env = common.as_the_command(env)
    else:
        env.setdefault("TELLKIT_THREADS", "all")
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
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


cpu_flags = common.cpu_flags  # (kept under its old name for scripts that import it from here)


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
                self.tokens, self.slots, self._tokens, self._slots = [], [], 0, 0  # real tokens, positions per step

            def count(self, inputs) -> None:
                """A micro-batch as the model gets it: real tokens (attention mask, else every position)."""
                ids = inputs["input_ids"]
                mask = inputs.get("attention_mask")
                self._tokens += int(mask.sum()) if mask is not None else ids.numel()
                self._slots += ids.numel()

            def on_step_end(self, args, state, control, **kw):
                self.t.append(time.perf_counter())
                self.tokens.append(self._tokens)
                self.slots.append(self._slots)
                self._tokens = self._slots = 0

            def on_log(self, args, state, control, logs=None, **kw):
                if logs and "loss" in logs:
                    self.losses.append(float(logs["loss"]))

        return _Times()


def run_arm(arm: str, model_path: str, rows: int, length: int, steps: int, bf16: bool,
            data: list[dict] | None = None) -> dict:
    """One arm in this process. `data` (--mixture): the mixture's examples, `rows` of them per step;
    else uniform synthetic examples, `rows` x 4 per step."""
    import torch

    from tellkit.models import load_tokenizer

    mixture = data is not None
    per_step = rows if mixture else rows * 4  # examples per optimizer step
    if not mixture:
        data = examples(rows, length, steps, load_tokenizer(model_path).vocab_size)
    times = StepTimes()
    if arm.startswith("tellkit"):
        train_tellkit(model_path, data, per_step, length, steps, "ckpt" in arm, times, bf16, keep="keep" in arm)
    elif arm == "hf-packed":
        train_hf_packed(model_path, data, rows, length, steps, times, bf16)
    else:
        packed_rows = rows
        if mixture:  # as many rows of max_length as hold a step's tokens, on average
            packed_rows = max(1, round(sum(len(e["input_ids"]) for e in data) / steps / length))
        train_trl(model_path, data, packed_rows if "packed" in arm else per_step, length, steps,
                  packed="packed" in arm, ckpt=not arm.endswith("nockpt"), times=times, bf16=bf16)
    real = times.tokens[1:] if any(times.tokens) else [rows * length] * (len(times.t) - 1)  # uniform: no padding
    tok_s = sum(real) / (times.t[-1] - times.t[0])  # the steps after the first (warm-up)
    padding = 1 - sum(times.tokens) / sum(times.slots) if any(times.slots) else None
    peak = (torch.cuda.max_memory_allocated() if torch.cuda.is_available()
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**30
    return {"arm": arm, "shape": f"{rows}x{length}", "examples": per_step, "tok_s": tok_s, "peak_gib": peak,
            "estimate_gib": getattr(times, "estimate_gib", None), "losses": times.losses, "padding": padding,
            "step_seconds": [round(b - a, 3) for a, b in zip(times.t, times.t[1:])],
            "dtype": "bf16 autocast" if bf16 else "fp32", **common.process_setup(),
            "ckpt": "ckpt" in arm and not arm.endswith("nockpt") or arm in ("trl-padded", "trl-packed")}


def train_tellkit(model_path, data, batch_size, length, steps, ckpt, times, bf16, keep) -> None:
    import numpy as np
    from datasets import Dataset

    import tellkit.train.trainer as tt
    from tellkit.config import Config
    from tellkit.mix import Mixture

    ds = Dataset.from_list([{"input_ids": ex["input_ids"], "labels": ex["labels"], "n_tokens": len(ex["input_ids"])}
                            for ex in data])
    mixture = Mixture(task=ds, general=None, order=np.stack([np.zeros(len(ds)), np.arange(len(ds))], 1).astype(np.int64))
    cfg = Config.model_validate({
        "model": {"name": model_path, "dtype": WEIGHTS}, "task": {"path": "unused.jsonl"}, "mix": {"method": "sft"},
        "lora": {"r": LORA["r"], "alpha": LORA["lora_alpha"], "dropout": 0.0},
        "train": {"max_steps": steps, "batch_size": batch_size, "max_length": length, "lr": LR,
                  "scheduler": "linear", "warmup_ratio": 0.0, "save_steps": 10_000, "gradient_checkpointing": ckpt,
                  "bf16": bf16, "seed": 0}})
    from tellkit.train.memory import ModelShape, estimate
    from tellkit.train.plan import plan_training

    plan = plan_training(cfg, mixture)
    times.estimate = estimate(ModelShape.load(model_path), cfg, plan.micro_tokens_max, budget=(64, "", "cpu"))
    times.estimate_gib = times.estimate.total_gib
    tt.Progress = lambda tokens: times  # our step clock instead of the progress bar
    real_step = getattr(tt.MixtureTrainer, "_bench_step", tt.MixtureTrainer.training_step)  # (arms in one process)

    def counted(self, model, inputs, *a, **k):
        times.count({"input_ids": inputs["input_ids"]})  # a padding-free row: every position is real
        return real_step(self, model, inputs, *a, **k)

    tt.MixtureTrainer._bench_step, tt.MixtureTrainer.training_step = real_step, counted
    if keep:  # autograd keeps every activation, as before train/lean.py
        tt.lean_activations = lambda model: 0
        tt.recompute = lambda *a, **k: contextlib.nullcontext()
    with tempfile.TemporaryDirectory() as out:
        tt.train_mixture(cfg, model_path, mixture, Path(out), plan=plan)


def _lora_model(model_path):
    from peft import LoraConfig, get_peft_model

    from tellkit.models import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(model_path, dtype=WEIGHTS)
    model.config.use_cache = False
    return get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **LORA)), tok


def train_hf_packed(model_path, data, rows, length, steps, times, bf16) -> None:
    """tellkit before this change: max_length rows of 4 examples, block-diagonal SDPA mask from the
    position-id restarts, the model's loss on full logits."""
    import torch
    from transformers import Trainer, TrainingArguments, set_seed

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


def train_trl(model_path, data, rows, length, steps, packed, ckpt, times, bf16, liger=False) -> None:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    from tellkit.models import load_model_and_tokenizer

    class InOrder(SFTTrainer):
        """The examples in data order (the mixture already is the seeded shuffle), real tokens counted."""

        def _get_train_sampler(self, train_dataset=None):
            return torch.utils.data.SequentialSampler(train_dataset if train_dataset is not None else self.train_dataset)

        def training_step(self, model, inputs, *a, **k):
            times.count(inputs)
            return super().training_step(model, inputs, *a, **k)

    model, tok = load_model_and_tokenizer(model_path, dtype=WEIGHTS)
    ds = Dataset.from_list([{"input_ids": e["input_ids"], "completion_mask": [int(x != -100) for x in e["labels"]]}
                            for e in data])
    args = SFTConfig(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=rows,
                     max_steps=steps, learning_rate=LR, max_length=length, packing=packed,
                     packing_strategy="bfd", completion_only_loss=True, gradient_checkpointing=ckpt,
                     use_cpu=not torch.cuda.is_available(), report_to="none", save_strategy="no",
                     disable_tqdm=True, bf16=bf16, logging_steps=1, use_liger_kernel=liger)
    trainer = InOrder(model=model, args=args, train_dataset=ds, processing_class=tok,
                      peft_config=LoraConfig(task_type="CAUSAL_LM", **LORA), callbacks=[times])
    trainer.remove_callback(PrinterCallback)  # a dict per step on stdout: the step clock records what we need
    trainer.train()


if __name__ == "__main__":
    main()
