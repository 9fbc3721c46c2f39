"""Evaluation throughput: tellkit's batched generation vs a naive one-example-at-a-time loop.

    python benchmarks/bench_eval.py                                   # default model, 16 orders prompts
    python benchmarks/bench_eval.py --n 32 --batch-size 16 --task halu

Both arms generate greedily with a KV cache from the same prompts and the same model
(bf16 autocast where the CPU has native bf16, as `tellkit eval` does); the naive arm calls
`model.generate` on one prompt at a time. Generated tokens/s = new tokens / wall seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from tellkit.evaluate.generate import generate, generated_tokens  # noqa: E402
from tellkit.models.resolve import load_model_and_tokenizer, resolve_model  # noqa: E402
from tellkit.train.trainer import use_bf16  # noqa: E402

DATA = {"orders": "examples/data/orders/test.jsonl", "halu": "examples/data/halu/test.jsonl"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--task", choices=sorted(DATA), default="orders")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    a = ap.parse_args()

    model, tok = load_model_and_tokenizer(resolve_model(a.model))
    rows = [json.loads(line) for line in open(Path(__file__).resolve().parents[1] / DATA[a.task])][: a.n]
    prompts = [tok.apply_chat_template([{"role": "user", "content": r["prompt"]}], tokenize=False,
                                       add_generation_prompt=True) for r in rows]
    bf16 = use_bf16("auto")
    results = {}
    for arm, bs in (("batched", a.batch_size), ("naive loop", 1)):
        start = time.perf_counter()
        outputs = generate(model, tok, prompts, max_new_tokens=a.max_new_tokens, batch_size=bs, bf16=bf16)
        seconds = time.perf_counter() - start
        results[arm] = (generated_tokens(tok, outputs), seconds)
    print(f"| model | task | prompts | max_new_tokens | arm | batch | generated tokens | s | tok/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for arm, (n_tok, s) in results.items():
        bs = a.batch_size if arm == "batched" else 1
        print(f"| {a.model} | {a.task} | {a.n} | {a.max_new_tokens} | {arm} | {bs} | {n_tok} | {s:.1f} | {n_tok / s:.1f} |")
    (bt, bs_), (nt, ns) = results["batched"], results["naive loop"]
    print(f"\nbatched / naive throughput: {(bt / bs_) / (nt / ns):.2f}x")


if __name__ == "__main__":
    main()
