"""Memory estimate vs measured peak: `tellkit train` at several micro-batch shapes, each in a fresh process.

    python benchmarks/bench_memory.py                                   # tiny random model, ~1 min
    python benchmarks/bench_memory.py --model smollm2-135m-instruct     # SmolLM2 at 3 shapes, ~6 min
    python benchmarks/bench_memory.py --model smollm2-135m-instruct --shapes 8x1024 4x512:padded 2x512:ckpt

A shape is EXAMPLESxTOKENS[:padded][:ckpt]: micro-batches of EXAMPLES examples of about TOKENS tokens
each (synthetic, nearly constant length), packed (default) or padded, with or without gradient
checkpointing. Each shape trains --steps optimizer steps in a child `python -m tellkit.cli train`;
the measured peak is the child's maximum resident set size (os.wait4, the number `/usr/bin/time -v`
prints), the estimate is tellkit.train.memory's for the largest micro-batch those steps train.
Prints a Markdown table with the relative error (estimate / measured - 1).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import common


def shape_args(shape: str) -> tuple[int, int, bool, bool]:
    head, *flags = shape.split(":")
    examples, tokens = (int(x) for x in head.split("x"))
    return examples, tokens, "padded" in flags, "ckpt" in flags


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--shapes", nargs="+", help="default: 8x128 8x512 2x1024:padded (tiny); "
                    "1x512 4x512 8x1024 (otherwise)")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--workdir", type=Path)
    a = ap.parse_args()
    tiny = a.model in ("tiny", "tiny-random")
    shapes = a.shapes or (["8x128", "8x512", "2x1024:padded"] if tiny else ["1x512", "4x512", "8x1024"])
    work = a.workdir or Path(tempfile.mkdtemp(prefix="tellkit-bench-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    model = common.resolve(a.model, work)
    print(f"<!-- {common.machine()}; model {a.model}; fp32; {a.steps} optimizer steps per shape -->")
    print("| model | shape | micro-batch tokens (slots) | grad. ckpt | estimate GiB | measured peak RSS GiB | error |")
    print("|---|---|---|---|---|---|---|")
    for shape in shapes:
        examples, tokens, padded, ckpt = shape_args(shape)
        est, slots, peak = measure(work / shape.replace(":", "-"), model, examples, tokens, padded, ckpt, a.steps)
        print(f"| {a.model} | {examples} x {tokens}{' padded' if padded else ' packed'} | {slots:,} | "
              f"{'on' if ckpt else 'off'} | {est:.2f} | {peak:.2f} | {est / peak - 1:+.0%} |", flush=True)


def measure(folder: Path, model: str, examples: int, tokens: int, padded: bool, ckpt: bool,
            steps: int) -> tuple[float, int, float]:
    from transformers import AutoTokenizer

    from tellkit.api import load
    from tellkit.mix.prepare import mix, prepare
    from tellkit.train.memory import ModelShape, estimate
    from tellkit.train.plan import example_lengths, micro_batch_slots

    folder.mkdir(parents=True, exist_ok=True)
    tpw = common.tokens_per_word(AutoTokenizer.from_pretrained(model))
    n = examples * steps * 4  # enough examples that the measured steps are all of this shape
    common.write_jsonl(folder / "task.jsonl", common.task_rows(max(4, n // 20)))
    # every general example about `tokens` long (the template and instruction add ~30)
    common.write_jsonl(folder / "general.jsonl",
                       common.general_rows(n * 3, 1, tpw, median_tokens=tokens - 40, sigma=0.02, max_tokens=tokens))
    cfg_path = common.write_config(folder, model, "general.jsonl", ratio=200, batch_size=examples, grad_accum=1,
                                   max_length=tokens, max_steps=steps, packing=not padded, bf16=False,
                                   save_steps=10_000, gradient_checkpointing=ckpt, memory_budget_gb=1000)
    cfg = load(cfg_path, ["mix.allow_general_repeats=true"])
    p = prepare(cfg)
    mixture = mix(cfg, prepared=p)
    slots, _ = micro_batch_slots(example_lengths(mixture), examples, not padded)
    trained = int(slots[:steps].max())  # the largest micro-batch the measured steps train
    est = estimate(ModelShape.load(p.model_ref), cfg, trained).total_gib
    child = subprocess.Popen([sys.executable, "-m", "tellkit.cli", "train", str(cfg_path),
                              "mix.allow_general_repeats=true", "--overwrite"],
                             stdout=subprocess.DEVNULL, stderr=open(folder / "train.log", "w"))
    _, status, usage = os.wait4(child.pid, 0)
    if status != 0:
        sys.exit(f"train failed at {folder}: see {folder / 'train.log'}")
    return est, trained, usage.ru_maxrss / 1024 ** 2  # KiB -> GiB


if __name__ == "__main__":
    main()
