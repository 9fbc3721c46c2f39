"""Training throughput: tellkit's packed rows vs a plain padded HF Trainer, same model, data, LoRA.

    python benchmarks/bench_train.py                               # tiny random model, ~1 min
    python benchmarks/bench_train.py --model smollm2-135m-instruct # the default model, a few minutes

Both arms train the same TELL mixture of varied-length examples for --steps
optimizer steps and count real (non-pad) tokens per second of wall time
around `trainer.train()` (first step and the final checkpoint included in both).
Each arm runs twice, in the order packed, padded, padded, packed, and its
throughput is its tokens over its time summed over both runs, so a drift in
machine load during the run affects both arms alike.
Packed: tellkit.train.trainer.train_mixture (batch_size rows of max_length).
Padded: transformers.Trainer with its default random sampler and
DataCollatorForSeq2Seq (pad to the longest example of each batch), with as many
examples per step as the packed rows hold on average.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

import common


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--steps", type=int, help="optimizer steps per run (default 12 tiny, 8 otherwise)")
    ap.add_argument("--batch-size", type=int, help="packed rows per step (default 4 tiny, 1 otherwise)")
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--bf16", default="auto", choices=["auto", "true", "false"])
    ap.add_argument("--general-examples", type=int, default=2000)
    a = ap.parse_args()
    tiny = a.model in ("tiny", "tiny-random")
    steps = a.steps or (12 if tiny else 8)
    rows_per_step = a.batch_size or (4 if tiny else 1)
    load0 = os.getloadavg()[0]

    with tempfile.TemporaryDirectory(prefix="tellkit-bench-train-") as tmp:
        d = Path(tmp)
        model_path = common.resolve(a.model, d)
        os.environ["TELLKIT_CACHE"] = str(d / "cache")  # after resolving: the model conversion stays cached
        from tellkit import api
        from tellkit.models.resolve import load_tokenizer

        tpw = common.tokens_per_word(load_tokenizer(model_path))
        common.write_jsonl(d / "task.jsonl", common.task_rows(100))
        common.write_jsonl(d / "general.jsonl", common.general_rows(a.general_examples, 1, tpw,
                                                                     max_tokens=int(1.2 * a.max_length)))
        bf16 = {"auto": "auto", "true": True, "false": False}[a.bf16]
        cfg_path = common.write_config(d, model_path, "general.jsonl", ratio=60, max_steps=steps,
                                       batch_size=rows_per_step, max_length=a.max_length, bf16=bf16,
                                       save_steps=10_000, lr=1e-4)
        cfg = api.load(cfg_path)
        prepared = api.prepare(cfg)
        mixture = api.mix(cfg, prepared=prepared)
        packed = run_packed(cfg, prepared, mixture, d / "packed-1")
        padded = run_padded(cfg, prepared, mixture, d / "padded-1", packed["examples_per_row"])
        again = run_padded(cfg, prepared, mixture, d / "padded-2", packed["examples_per_row"])
        for k in ("tokens", "wall"):
            padded[k] += again[k]
        again = run_packed(cfg, prepared, mixture, d / "packed-2")
        for k in ("tokens", "wall"):
            packed[k] += again[k]
        packed["tok_s"], padded["tok_s"] = (x["tokens"] / x["wall"] for x in (packed, padded))

    lengths = packed["lengths"]
    print(f"\nmachine: {common.machine()} (at the end; {load0:.1f} at the start); bf16={packed['bf16']}\n")
    print("| model | max_length | steps x runs | packed batch | padded batch | example tokens p10/p50/mean/p90 "
          "| packing eff. | padding eff. | order kept (mean/max displacement, examples) "
          "| tellkit packed tok/s | padded HF tok/s | speed-up |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    p10, p50, p90 = np.percentile(lengths, [10, 50, 90])
    print(f"| {a.model} | {a.max_length} | {steps} x 2 | {rows_per_step} rows x {a.max_length} "
          f"| {padded['batch']} examples | {p10:.0f}/{p50:.0f}/{lengths.mean():.0f}/{p90:.0f} "
          f"| {packed['efficiency']:.1%} | {padded['efficiency']:.1%} "
          f"| {packed['displacement'][0]:.0f}/{packed['displacement'][1]} "
          f"| {packed['tok_s']:.0f} | {padded['tok_s']:.0f} | {packed['tok_s'] / padded['tok_s']:.2f}x |")
    packing_table()


def packing_table() -> None:
    """The packer alone on 20,000 synthetic lengths per distribution (no model needed)."""
    from tellkit.train.packing import efficiency, pack

    rng = np.random.default_rng(0)
    cases = [("log-normal median 150, sigma 1.0", np.clip(rng.lognormal(np.log(150), 1.0, 20000), 8, 1024), 1024),
             ("log-normal median 250, sigma 0.9", np.clip(rng.lognormal(np.log(250), 0.9, 20000), 8, 1024), 1024),
             ("uniform 10-120", rng.integers(10, 120, 20000), 256),
             ("uniform 8-1024", rng.integers(8, 1024, 20000), 1024),
             ("uniform 30-100 (hard: items up to 78% of a row)", rng.integers(30, 100, 20000), 128)]
    print("\n| example lengths | max_length | packing eff. | displacement mean / p99 / max (examples) |")
    print("|---|---|---|---|")
    for name, lengths, max_length in cases:
        lengths = lengths.astype(np.int64)
        rows = pack(lengths, max_length)
        d = displacement(rows)
        print(f"| {name} | {max_length} | {efficiency(lengths, rows, max_length):.1%} "
              f"| {d.mean():.0f} / {np.percentile(d, 99):.0f} / {d.max()} |")


def displacement(rows: list[list[int]]) -> np.ndarray:
    """|training position - mixture position| of every example."""
    flat = np.concatenate(rows)
    return np.abs(np.argsort(flat) - np.arange(len(flat)))


def run_packed(cfg, prepared, mixture, out: Path) -> dict:
    from tellkit.train.packing import efficiency, pack
    from tellkit.train.trainer import train_mixture

    data = mixture.dataset()
    lengths = np.asarray(data.select_columns(["n_tokens"]).with_format("numpy")["n_tokens"], dtype=np.int64)
    rows = pack(lengths, cfg.train.max_length)  # what train_mixture does, for the order/efficiency columns
    moved = displacement(rows)
    stats = train_mixture(cfg, prepared.model_ref, mixture, out)
    return {"tokens": stats["train_tokens"], "wall": stats["wall_seconds"], "efficiency": efficiency(lengths, rows, cfg.train.max_length),
            "examples_per_row": len(lengths) / len(rows), "lengths": lengths, "bf16": stats["bf16"],
            "displacement": (moved.mean(), int(moved.max()))}


def run_padded(cfg, prepared, mixture, out: Path, examples_per_row: float) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForSeq2Seq, PrinterCallback, Trainer, TrainingArguments, set_seed

    from tellkit.models.resolve import load_model_and_tokenizer
    from tellkit.train.trainer import use_bf16

    t = cfg.train
    set_seed(t.seed)
    model, tok = load_model_and_tokenizer(prepared.model_ref, dtype=cfg.model.dtype)
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                                             target_modules=cfg.lora.target_modules, task_type="CAUSAL_LM"))
    batch = max(1, round(t.batch_size * examples_per_row))
    pad = DataCollatorForSeq2Seq(tok, padding="longest", label_pad_token_id=-100)
    counts = {"real": 0, "slots": 0}

    def collate(features):
        b = pad(features)
        counts["real"] += int(b["attention_mask"].sum())
        counts["slots"] += b["attention_mask"].numel()
        return b

    args = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=batch, gradient_accumulation_steps=t.grad_accum,
        max_steps=t.max_steps, learning_rate=t.lr, lr_scheduler_type=t.scheduler,
        warmup_steps=int(t.warmup_ratio * t.max_steps), logging_steps=t.logging_steps, save_strategy="steps",
        save_steps=t.save_steps, seed=t.seed, bf16=use_bf16(t.bf16), use_cpu=not torch.cuda.is_available(),
        report_to="none", disable_tqdm=True, remove_unused_columns=False, dataloader_num_workers=0)
    trainer = Trainer(model=model, args=args, data_collator=collate,
                      train_dataset=mixture.dataset().select_columns(["input_ids", "labels"]))
    trainer.remove_callback(PrinterCallback)
    start = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - start
    return {"tokens": counts["real"], "wall": wall, "efficiency": counts["real"] / counts["slots"], "batch": batch}


if __name__ == "__main__":
    main()
