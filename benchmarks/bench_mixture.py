"""Mixture building at scale: tokenization + selection tokens/s and peak memory vs corpus size.

    python benchmarks/bench_mixture.py --tokens 1e6 1e7          # minutes
    nohup python benchmarks/bench_mixture.py --tokens 1e8 > bench_1e8.log &   # ~15-25 min on 2 cores

For each size a synthetic general corpus of about that many tokens (log-normal
example lengths, 64 JSONL shards) is written under --workdir, then a CHILD
process builds a TELL mixture from it with a cold tokenization cache, drawing
~90% of the general tokens. The child's peak memory comes from the kernel
(os.wait4 ru_maxrss, i.e. VmHWM) plus a sampler of its anonymous RSS (heap,
excluding the page cache of the memory-mapped Arrow files, which the kernel can
drop at any time).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import common


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokens", nargs="+", type=float, default=[1e6, 1e7])
    ap.add_argument("--model", default="smollm2-135m-instruct", help="whose tokenizer (default: the default model)")
    ap.add_argument("--workdir", help="keep corpora and caches here (default: a temp dir, removed)")
    ap.add_argument("--no-write", action="store_true", help="skip writing mixture.jsonl")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(Path(a.child), not a.no_write)

    work = Path(a.workdir) if a.workdir else Path(tempfile.mkdtemp(prefix="tellkit-bench-mix-"))
    model_path = common.resolve(a.model, work)
    from tellkit.models import load_tokenizer

    tpw = common.tokens_per_word(load_tokenizer(model_path))
    print(f"machine: {common.machine()}; tokenizer: {a.model}\n")
    print("| general corpus | examples | JSONL MB | tokenize s | tokenize tok/s | select+shuffle s "
          "| write mixture.jsonl s | mixture examples | peak RSS MiB | peak anon RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    try:
        for n in a.tokens:
            d = work / f"corpus-{n:.0e}"
            if not (d / "cfg.yaml").exists():
                make_corpus(d, int(n), tpw, model_path)
            shutil.rmtree(d / "cache", ignore_errors=True)
            shutil.rmtree(d / "run", ignore_errors=True)
            cmd = [sys.executable, __file__, "--child", str(d)] + (["--no-write"] if a.no_write else [])
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
            out = proc.stdout.read()
            _, status, usage = os.wait4(proc.pid, 0)
            if status != 0:
                sys.exit(f"child failed for {n:.0e}:\n{out}")
            r = json.loads(out.strip().splitlines()[-1])
            mb = sum(f.stat().st_size for f in (d / "general").iterdir()) / 2**20
            print(f"| {r['general_tokens']:,} tokens | {r['general_examples']:,} | {mb:.0f} | {r['tokenize_s']:.1f} "
                  f"| {r['general_tokens'] / r['tokenize_s']:,.0f} | {r['select_s']:.2f} | {r['write_s']:.1f} "
                  f"| {r['mixture_examples']:,} | {usage.ru_maxrss / 1024:.0f} | {r['peak_anon_mib']:.0f} |", flush=True)
    finally:
        if not a.workdir:
            shutil.rmtree(work, ignore_errors=True)


def make_corpus(d: Path, n_tokens: int, tpw: float, model_path: str) -> None:
    mean_tokens = 280  # response: log-normal median 150, sigma 1.0 (mean ~240) + instruction and template
    n_examples = max(100, n_tokens // mean_tokens)
    common.write_jsonl(d / "general", common.general_rows(n_examples, 1, tpw), shard_rows=-(-n_examples // 64))
    common.write_jsonl(d / "task.jsonl", common.task_rows(500))
    common.write_config(d, model_path, "general", ratio=1, max_length=1024)


def child(d: Path, write: bool) -> None:
    os.environ["TELLKIT_CACHE"] = str(d / "cache")
    peak = {"anon": 0.0}
    done = threading.Event()

    def sample():
        while not done.wait(0.05):
            peak["anon"] = max(peak["anon"], common.rss_mib()["RssAnon"])

    threading.Thread(target=sample, daemon=True).start()
    r = common.mix_stages(d / "cfg.yaml", d / "run" if write else None, ratio_of_corpus=0.9)
    done.set()
    r["peak_anon_mib"] = max(peak["anon"], common.rss_mib()["RssAnon"])
    print(json.dumps(r))


if __name__ == "__main__":
    main()
