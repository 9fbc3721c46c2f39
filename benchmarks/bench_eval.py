"""Evaluation throughput: tellkit's generation today vs the batch-by-batch `model.generate` it replaced.

    python benchmarks/bench_eval.py                        # orders 40 x 128 new tokens, halu 20 x 96, SmolLM2-135M
    python benchmarks/bench_eval.py --presets orders --n 16 --max-new-tokens 64

Both arms decode greedily from the same prompts (rendered as `tellkit eval` renders them for the base model)
with the same model, in one process, old arm first. "old" is the previous tellkit generate (kept below as
`old_generate`): `model.generate` on length-sorted, left-padded batches of `--batch-size`. "new" is
tellkit.generation.generate with the same batch_size. Generated tokens are counted the way `tellkit eval` counts
them (the output text re-tokenized). Also printed: a memory-bandwidth copy test and the lower bound it implies
for one decode step (every weight read once per step).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from tellkit import hardware  # noqa: E402
from tellkit.config import load_config  # noqa: E402
from tellkit.data.formats import to_examples  # noqa: E402
from tellkit.data.readers import read_records  # noqa: E402
from tellkit.data.tokenize import encode_prompt  # noqa: E402
from tellkit.generation.generate import generate, generated_tokens  # noqa: E402
from tellkit.models import load_model_and_tokenizer, resolve_model  # noqa: E402

PRESETS = {"orders": ("examples/orders.yaml", 40, 128), "halu": ("examples/quickstart.yaml", 20, 96)}


def old_generate(model, tokenizer, prompts, *, max_new_tokens, batch_size=8, do_sample=False, temperature=1.0,
                 seed=0):
    """tellkit's generate before issue 14 (fp32 path), verbatim: the reference for speed and for identical outputs."""
    tokenizer.padding_side = "left"
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]), reverse=True)
    outputs = [""] * len(prompts)
    torch.manual_seed(seed)
    sampling = {"do_sample": True, "temperature": temperature} if do_sample else {"do_sample": False}
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start: start + batch_size]
            enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True,
                            add_special_tokens=False).to(model.device)
            out = model.generate(**enc, max_new_tokens=max_new_tokens, use_cache=True,
                                 pad_token_id=tokenizer.pad_token_id, top_p=None, top_k=None, **sampling)
            new = out[:, enc["input_ids"].shape[1]:]
            for i, text in zip(idx, tokenizer.batch_decode(new, skip_special_tokens=True)):
                outputs[i] = text.strip()
    return outputs


def copy_bandwidth(mib: int = 512, reps: int = 10) -> float:
    """GB/s of memory traffic (read + write) for a large tensor copy."""
    src = torch.ones(mib * 2 ** 20 // 4)
    dst = torch.empty_like(src)
    dst.copy_(src)
    start = time.perf_counter()
    for _ in range(reps):
        dst.copy_(src)
    return 2 * src.numel() * 4 * reps / (time.perf_counter() - start) / 1e9


def preset_prompts(tok, name: str, n: int | None) -> tuple[list[str], int]:
    path, default_n, max_new = PRESETS[name]
    cfg = load_config(ROOT / path)
    examples = list(to_examples(read_records(cfg.task.test_path), cfg.task.format, cfg.task.columns,
                                id_prefix="test"))[: n or default_n]
    return [encode_prompt(tok, ex["messages"]) for ex in examples], max_new


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--presets", nargs="+", choices=sorted(PRESETS), default=["orders", "halu"])
    ap.add_argument("--n", type=int, default=None, help="prompts per preset (default: 40 orders, 20 halu)")
    ap.add_argument("--max-new-tokens", type=int, default=None, help="default: 128 orders, 96 halu")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-batch", type=int, default=None, help="new arm's eval.max_batch (default auto)")
    a = ap.parse_args()

    model, tok = load_model_and_tokenizer(resolve_model(a.model))
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    bandwidth = copy_bandwidth()
    print(f"machine: {torch.get_num_threads()} threads, CPU {hardware.cpu()}, torch {torch.__version__}, "
          f"dtype {next(model.parameters()).dtype}")
    print(f"memory copy: {bandwidth:.1f} GB/s (read+write); weights {weight_bytes / 1e6:.0f} MB -> lower bound "
          f"{weight_bytes / (bandwidth * 1e9) * 1e3:.1f} ms per decode step (weights read once per step)\n")
    rows = []
    for name in a.presets:
        prompts, max_new = preset_prompts(tok, name, a.n)
        max_new = a.max_new_tokens or max_new
        prompt_tokens = sum(len(tok(p, add_special_tokens=False)["input_ids"]) for p in prompts)
        outs = {}
        for arm in ("old", "new"):
            start = time.perf_counter()
            if arm == "old":
                outs[arm] = old_generate(model, tok, prompts, max_new_tokens=max_new, batch_size=a.batch_size)
            else:
                outs[arm] = generate(model, tok, prompts, max_new_tokens=max_new, batch_size=a.batch_size,
                                     max_batch=a.max_batch)
            seconds = time.perf_counter() - start
            rows.append((name, len(prompts), prompt_tokens, max_new, arm, generated_tokens(tok, outs[arm]), seconds))
            print(f"{name} {arm}: {rows[-1][5]} tokens in {seconds:.1f} s", flush=True)
        same = sum(x == y for x, y in zip(outs["old"], outs["new"]))
        rows[-1] += (f"{same}/{len(prompts)}",)
    print("\n| preset | prompts | prompt tokens | max_new_tokens | arm | generated tokens | s | generated tok/s "
          "| (prompt+generated) tok/s | speed-up | identical outputs |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for i in range(0, len(rows), 2):
        old, new = rows[i], rows[i + 1]
        for r in (old, new):
            name, n, ptok, mnt, arm, gen, s = r[:7]
            ratio = f"**{(new[5] / new[6]) / (old[5] / old[6]):.2f}x**" if r is new else ""
            print(f"| {name} | {n} | {ptok} | {mnt} | {arm} | {gen} | {s:.1f} | {gen / s:.1f} | {(ptok + gen) / s:.1f} "
                  f"| {ratio} | {new[7] if r is new else ''} |")


if __name__ == "__main__":
    main()
