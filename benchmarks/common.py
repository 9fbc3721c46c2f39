"""Shared by the benchmarks: the model, synthetic varied-length chat data, a config, RSS.

Synthetic data keeps the benchmarks offline and reproducible. Response lengths
follow a log-normal distribution (median ~150 tokens, long tail to max_length),
roughly the shape of public instruction sets such as Alpaca or Dolly.
"""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

WORDS = ("the of and to in is was for on that with as by at from his her it an were are which this be or has "
         "had not but their one all they been its who new more other first some can than time only people "
         "year city river model data report answer garden letter market train story museum weather library "
         "question recipe small old red green blue quick careful bright quiet busy kind happy tired curious "
         "reads writes finds repairs paints describes visits checks translates summarises opens explains "
         "remembers counts builds because so then when while after before during about into over under").split()


def resolve(model: str, workdir: Path) -> str:
    """A local model folder for `model`: 'tiny' builds the tiny random model, else tellkit resolves it."""
    if model in ("tiny", "tiny-random"):
        from tellkit.models.tiny import build_tiny_model

        return str(build_tiny_model(workdir / "tiny-model"))
    from tellkit.models.resolve import resolve_model

    return str(resolve_model(model))


def tokens_per_word(tokenizer) -> float:
    text = " ".join(random.Random(0).choice(WORDS) for _ in range(2000))
    return len(tokenizer(text, add_special_tokens=False)["input_ids"]) / 2000


def general_rows(n: int, seed: int, tpw: float, median_tokens: float = 150, sigma: float = 1.0,
                 max_tokens: int = 1200):
    """Alpaca-style rows whose response lengths in tokens are log-normal (median, sigma)."""
    rng = random.Random(seed)
    for i in range(n):
        k = max(1, int(min(rng.lognormvariate(0, sigma) * median_tokens, max_tokens) / tpw))
        yield {"id": f"g{i}", "instruction": "Write about " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 24))),
               "input": "", "output": " ".join(rng.choice(WORDS) for _ in range(k))}


def task_rows(n: int, seed: int = 7):
    rng = random.Random(seed)
    colours = ["red", "green", "blue", "yellow"]
    for i in range(n):
        c = rng.choice(colours)
        yield {"id": f"t{i}", "prompt": f"Which colour is named here: {c} {i}?", "completion": json.dumps({"colour": c})}


def write_jsonl(path: Path, rows, shard_rows: int | None = None) -> Path:
    """One file, or (shard_rows) a folder of part-00000.jsonl shards; returns the file or folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if shard_rows is None:
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
        return path
    path.mkdir(parents=True, exist_ok=True)
    f, shard = None, 0
    for i, r in enumerate(rows):
        if i % shard_rows == 0:
            if f:
                f.close()
            f = open(path / f"part-{shard:05d}.jsonl", "w", encoding="utf-8")
            shard += 1
        f.write(json.dumps(r) + "\n")
    if f:
        f.close()
    return path


def write_config(folder: Path, model_path: str, general: str, ratio: float, **train) -> Path:
    cfg = {"model": {"name": model_path}, "task": {"path": "task.jsonl"}, "general": {"path": general},
           "anchor": {"text": "ANCHOR: colour task."}, "mix": {"method": "tell", "ratio": ratio, "seed": 0},
           "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
           "train": {"logging_steps": 1, **train}, "output": {"dir": "run"}}
    path = folder / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


ROOT = Path(__file__).resolve().parents[1]


def general_demo() -> Path:
    """The Alpaca demo general data: the shared copy (999 rows of LLaMA-Factory's alpaca_en_demo) where a
    checkout has it, else the shipped examples/data/general (871 Alpaca + 2,468 HaluEval rows)."""
    shared = ROOT.parent / "shared" / "data" / "alpaca-en-demo" / "alpaca_en_demo.json"
    return shared if shared.is_file() else ROOT / "examples" / "data" / "general" / "general.jsonl"


def real_mixture_config(folder: Path, model_path: str, *, examples: int, batch_size: int = 8,
                        max_length: int = 512, ratio: float = 10, **train) -> Path:
    """A TELL config over real data of variable length: the order-extraction task (examples/orders.yaml's
    data and anchor, the "invoice-like" task) mixed into the Alpaca demo at `ratio`, with enough task
    tokens that the mixture holds at least `examples` examples."""
    orders = yaml.safe_load((ROOT / "examples" / "orders.yaml").read_text(encoding="utf-8"))
    cfg = {"model": {"name": model_path},
           "task": {"path": str(ROOT / "examples" / "data" / "orders" / "train.jsonl"),
                    "token_budget": max(1500, 40 * examples)},  # ~200 tokens per example, 1/(ratio+1) task
           "general": {"path": str(general_demo())},
           "anchor": {"text": orders["anchor"]["text"]}, "mix": {"method": "tell", "ratio": ratio, "seed": 0},
           "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
           "train": {"batch_size": batch_size, "grad_accum": 1, "max_length": max_length, "logging_steps": 1,
                     "save_steps": 10_000, "memory_budget_gb": 1000, **train},
           "output": {"dir": str(folder / "run")}}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "real-mixture.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def real_mixture_examples(folder: Path, model_path: str, examples: int, **kw) -> list[dict]:
    """The first `examples` examples of that mixture, in training order, as tellkit tokenized them
    (chat template, anchor, truncation to max_length): input_ids, labels (-100 = not supervised), task."""
    from tellkit.api import load
    from tellkit.mix.mixture import TASK
    from tellkit.mix.prepare import mix, prepare

    cfg = load(real_mixture_config(folder, model_path, examples=examples, **kw))
    mixture = mix(cfg, prepared=prepare(cfg))
    n = min(examples, len(mixture.order))
    rows = mixture.dataset().select(range(n)).select_columns(["input_ids", "labels"])
    return [{"input_ids": list(r["input_ids"]), "labels": list(r["labels"]), "task": int(src == TASK)}
            for r, src in zip(rows, mixture.order[:n, 0])]


def as_the_command(environ: dict) -> dict:
    """A child process's environment as the `tellkit` command sets up its own: threads = the cores free
    now and OpenMP's passive wait (tellkit/threads.py), the low-memory malloc preloaded (allocator.py).
    A TELLKIT_THREADS / OMP_* / TELLKIT_MALLOC in `environ` decides as it would for the command."""
    from tellkit import allocator, threads

    env = dict(environ)
    threads.configure(env)
    lib = allocator.preferred()
    if lib and Path(lib).is_file() and not any(k in env.get("LD_PRELOAD", "") for k in allocator._KNOWN):
        env = allocator.preload_env(lib, env)
    return env


def malloc_kind(environ: dict | None = None) -> str:
    """The allocator.kind() a process started with `environ` (default: like the command) runs with."""
    from tellkit import allocator

    preload = (environ if environ is not None else as_the_command(os.environ)).get("LD_PRELOAD", "")
    return next((k for k in allocator._KNOWN if k in preload), "system")


def process_setup() -> dict:
    """What this process computes with, for a result row: malloc, threads, OpenMP wait policy."""
    import torch

    from tellkit import allocator

    return {"malloc": allocator.kind(), "threads": torch.get_num_threads(),
            "wait": os.environ.get("OMP_WAIT_POLICY", "default")}


def cpu_flags() -> str:
    """The CPU features that decide fp32/bf16 speed here, and the GPU if any (every table prints them)."""
    from tellkit import hardware

    return f"CPU flags {hardware.speed_flags()}; {hardware.gpu()}"


def rss_mib() -> dict[str, float]:
    """This process's current resident memory (anonymous = heap; file = page cache of mapped files)."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, val = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            out[key] = int(val.split()[0]) / 1024
    return out


def machine() -> str:
    import platform

    import torch

    load = os.getloadavg()[0]
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, load avg {load:.1f}")


def mix_stages(cfg_path: Path, out: Path | None, ratio_of_corpus: float | None = None) -> dict:
    """tellkit's `mix` step by step (as tellkit.mix.prepare.mix does it), timing each stage.

    ratio_of_corpus: set mix.ratio so the mixture draws that fraction of the general tokens.
    """
    import time

    from tellkit import api
    from tellkit.mix import build_mixture
    from tellkit.mix.prepare import prepare

    cfg = api.load(cfg_path)
    t0 = time.perf_counter()
    p = prepare(cfg)
    t1 = time.perf_counter()
    task, general = p.task(anchored=True), p.general()
    t2 = time.perf_counter()
    task_tokens = int(task.data.column("n_tokens").to_numpy().sum())
    general_tokens = int(general.data.column("n_tokens").to_numpy().sum())
    if ratio_of_corpus is not None:
        cfg.mix.ratio = ratio_of_corpus * general_tokens / task_tokens
    mixture = build_mixture(task, general, cfg.mix, token_budget=cfg.task.token_budget)
    t3 = time.perf_counter()
    if out is not None:
        mixture.write(out)
    t4 = time.perf_counter()
    return {"load_tokenizer_s": t1 - t0, "tokenize_s": t2 - t1, "select_s": t3 - t2, "write_s": t4 - t3,
            "general_tokens": general_tokens, "general_examples": len(general), "task_tokens": task_tokens,
            "mixture_examples": len(mixture.order), "mixture_tokens": mixture.report["total"]["tokens"],
            "cache_hits": {k: v["cache_hit"] for k, v in p.infos.items()}}
