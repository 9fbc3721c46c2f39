"""Memory estimate vs measured peak: `tellkit train` at several micro-batch shapes, each in a fresh process.

    python benchmarks/bench_memory.py                                   # tiny random model, ~1 min
    python benchmarks/bench_memory.py --model smollm2-135m-instruct     # the refit sweep: fp32 + bf16, ~25 min
    python benchmarks/bench_memory.py --model smollm2-135m-instruct --shapes 8x1024 4x512:padded 2x512:ckpt:bf16
    TELLKIT_MALLOC=system python benchmarks/bench_memory.py --model smollm2-135m-instruct   # the same with glibc

A shape is EXAMPLESxTOKENS[:padded][:ckpt][:bf16][:real]: micro-batches of EXAMPLES examples of about
TOKENS tokens each (synthetic, nearly constant length), packed (default) or padded, with or without
gradient checkpointing, fp32 or under bf16 autocast; `:real` = the real TELL mixture instead (the
order-extraction task in the Alpaca demo at ratio 10, variable lengths up to max_length TOKENS, the
issue-29 case). Each shape trains --steps optimizer steps in a child `python -m tellkit.cli train`: the
`tellkit` command, so with the malloc and threads a user gets (TELLKIT_MALLOC=system for glibc's);
the measured peak is the child's maximum resident set size (os.wait4, the number `/usr/bin/time -v`
prints), the estimate is tellkit.train.memory's for the largest micro-batch those steps train, with the
factors of the child's malloc and precision. Prints a Markdown table with the relative error
(estimate / measured - 1), and the factor that would have made it exact (for ACT_SCALE / CKPT_SCALE).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import mock

import common

# The refit sweep (SmolLM2): both precisions at the shapes users train, checkpointing on and off, and
# the real mixture; on a CPU without native bf16 the bf16 rows measure emulated autocast.
SWEEP = ["1x512", "4x512", "8x512", "8x1024", "8x512:ckpt", "8x512:real",
         "1x512:bf16", "4x512:bf16", "8x512:bf16", "8x1024:bf16", "8x512:ckpt:bf16", "8x512:real:bf16"]


def shape_args(shape: str) -> tuple[int, int, bool, bool, bool, bool]:
    head, *flags = shape.split(":")
    examples, tokens = (int(x) for x in head.split("x"))
    return examples, tokens, "padded" in flags, "ckpt" in flags, "bf16" in flags, "real" in flags


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--shapes", nargs="+", help="default: 8x128 8x512 2x1024:padded 4x256:bf16 4x512:real (tiny); "
                    f"{' '.join(SWEEP)} (otherwise)")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--workdir", type=Path)
    a = ap.parse_args()
    tiny = a.model in ("tiny", "tiny-random")
    shapes = a.shapes or (["8x128", "8x512", "2x1024:padded", "4x256:bf16", "4x512:real"] if tiny else SWEEP)
    work = a.workdir or Path(tempfile.mkdtemp(prefix="tellkit-bench-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    model = common.resolve(a.model, work)
    malloc = common.malloc_kind()  # what the child `tellkit train` preloads
    print(f"<!-- {common.machine()}; {common.cpu_flags()}; the tellkit command's malloc: {malloc}; model {a.model}; "
          f"{a.steps} optimizer steps per shape -->")
    print("| model | shape | precision | micro-batch tokens (slots) | grad. ckpt | malloc | estimate GiB "
          "| measured peak RSS GiB | error | exact factor (now) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for shape in shapes:
        examples, tokens, padded, ckpt, bf16, real = shape_args(shape)
        est, slots, peak = measure(work / shape.replace(":", "-"), model, examples, tokens, padded, ckpt, a.steps,
                                   bf16=bf16, real=real, malloc=malloc)
        kind = "real mixture" if real else "padded" if padded else "packed"
        print(f"| {a.model} | {examples} x {tokens} {kind} | {est.precision} | {slots:,} | {'on' if ckpt else 'off'} | "
              f"{malloc} | {est.total_gib:.2f} | {peak:.2f} | {est.total_gib / peak - 1:+.0%} | {exact_factor(est, peak)} |",
              flush=True)


def exact_factor(est, peak: float) -> str:
    """The ACT_SCALE (CKPT_SCALE with checkpointing) that would have made this estimate equal the peak,
    and the one used: the activations part is the only one scaled (the final norm's 2 x hidden per
    token, a few MiB, is left in as measured)."""
    from tellkit.train import memory

    table = memory.CKPT_SCALE if est.gradient_checkpointing else memory.ACT_SCALE
    used, _ = memory._scale(table, est.precision, est.malloc)
    counted = est.parts_gib["activations"] / used
    return f"{used * (1 + (peak - est.total_gib) / (counted * used)):.2f} ({used:.2f})"


def measure(folder: Path, model: str, examples: int, tokens: int, padded: bool, ckpt: bool,
            steps: int, *, bf16: bool = False, real: bool = False, malloc: str = "system"):
    """(the estimate, the largest micro-batch's token slots, the measured peak GiB) of one shape."""
    from transformers import AutoTokenizer

    from tellkit import allocator
    from tellkit.api import load
    from tellkit.mix.prepare import mix, prepare
    from tellkit.train.memory import ModelShape, estimate
    from tellkit.train.plan import example_lengths, micro_batch_slots

    folder.mkdir(parents=True, exist_ok=True)
    train = dict(batch_size=examples, grad_accum=1, max_length=tokens, max_steps=steps, packing=not padded,
                 bf16=bf16, save_steps=10_000, gradient_checkpointing=ckpt, memory_budget_gb=1000)
    if real:
        cfg_path = common.real_mixture_config(folder, model, examples=examples * steps, **train)
        overrides = []
    else:
        tpw = common.tokens_per_word(AutoTokenizer.from_pretrained(model))
        n = examples * steps * 4  # enough examples that the measured steps are all of this shape
        common.write_jsonl(folder / "task.jsonl", common.task_rows(max(4, n // 20)))
        # every general example about `tokens` long (the template and instruction add ~30)
        common.write_jsonl(folder / "general.jsonl",
                           common.general_rows(n * 3, 1, tpw, median_tokens=tokens - 40, sigma=0.02, max_tokens=tokens))
        cfg_path = common.write_config(folder, model, "general.jsonl", ratio=200, **train)
        overrides = ["mix.allow_general_repeats=true"]
    cfg = load(cfg_path, overrides)
    p = prepare(cfg)
    mixture = mix(cfg, prepared=p)
    slots, _ = micro_batch_slots(example_lengths(mixture), examples, not padded)
    trained = int(slots[:steps].max())  # the largest micro-batch the measured steps train
    with mock.patch.object(allocator, "kind", lambda: malloc):  # the child's malloc, not this process's
        est = estimate(ModelShape.load(p.model_ref), cfg, trained)
    child = subprocess.Popen([sys.executable, "-m", "tellkit.cli", "train", str(cfg_path), *overrides, "--overwrite"],
                             stdout=subprocess.DEVNULL, stderr=open(folder / "train.log", "w"))
    _, status, usage = os.wait4(child.pid, 0)
    if status != 0:
        sys.exit(f"train failed at {folder}: see {folder / 'train.log'}")
    return est, trained, usage.ru_maxrss / 1024 ** 2  # KiB -> GiB


if __name__ == "__main__":
    main()
