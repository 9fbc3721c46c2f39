"""Tokenization cache: data preparation time of repeated runs vs the first (cold) one.

    python benchmarks/bench_cache.py                  # 10^6-token corpus, 3 runs, ~1 min
    python benchmarks/bench_cache.py --tokens 1e7

Each run is a fresh process doing what `tellkit mix` does (load the tokenizer,
tokenize task + general data through the cache, select + shuffle), timed inside
the process ("load tokenizer" includes importing transformers, ~2 s); writing
mixture.jsonl is timed apart (it is redone every run).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import common
from bench_mixture import make_corpus


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokens", type=float, default=1e6)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--workdir", help="reuse/keep the corpus here (default: a temp dir, removed)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        os.environ["TELLKIT_CACHE"] = str(Path(a.child) / "cache")
        print(json.dumps(common.mix_stages(Path(a.child) / "cfg.yaml", Path(a.child) / "run", ratio_of_corpus=0.9)))
        return

    work = Path(a.workdir) if a.workdir else Path(tempfile.mkdtemp(prefix="tellkit-bench-cache-"))
    try:
        model_path = common.resolve(a.model, work)
        d = work / f"corpus-{a.tokens:.0e}"
        if not (d / "cfg.yaml").exists():
            from tellkit.models import load_tokenizer

            make_corpus(d, int(a.tokens), common.tokens_per_word(load_tokenizer(model_path)), model_path)
        shutil.rmtree(d / "cache", ignore_errors=True)
        print(f"machine: {common.machine()}; tokenizer: {a.model}\n")
        print("| general corpus | run | cache hits (task+anchor, general) | load tokenizer s | tokenize s "
              "| select s | data preparation s | vs first run | (write mixture.jsonl s) |")
        print("|---|---|---|---|---|---|---|---|---|")
        first = None
        for run in range(1, a.runs + 1):
            shutil.rmtree(d / "run", ignore_errors=True)
            out = subprocess.run([sys.executable, __file__, "--child", str(d)], capture_output=True, text=True,
                                 env={**os.environ, "TQDM_DISABLE": "1"}, check=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            prep = r["load_tokenizer_s"] + r["tokenize_s"] + r["select_s"]
            first = first or prep
            hits = ", ".join("hit" if r["cache_hits"][k] else "miss" for k in ("task+anchor", "general"))
            print(f"| {r['general_tokens']:,} tokens | {run} | {hits} | {r['load_tokenizer_s']:.2f} "
                  f"| {r['tokenize_s']:.2f} | {r['select_s']:.2f} | {prep:.2f} | {prep / first:.1%} "
                  f"| {r['write_s']:.2f} |", flush=True)
    finally:
        if not a.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
