"""The GPU check: tellkit's CUDA paths in one run of at most 10 minutes, written as one Markdown table.

    python benchmarks/gpu_check.py --out gpu-check/            # on one H100/H200, no network
    python benchmarks/gpu_check.py --tiny --out /tmp/check     # CPU, tiny shapes: what CI runs (~30 s)

No GPU has trained tellkit yet: its flash-attention varlen path, bf16 on CUDA, the CUDA factors of the
memory estimate and the vLLM backend are unmeasured. This script checks them with what a GPU machine
has (torch, transformers, peft, accelerate, triton) plus small carried wheels (trl, liger-kernel;
benchmarks/README.md, "GPU check", says how to download them), and no download at run time:
1. random-weight models of realistic shapes built from configs alone (Llama-3.2-1B, Qwen2.5-1.5B),
   with tellkit's offline tiny tokenizer; `--tiny`: the same architectures at a few hundred thousand
   parameters;
2. the loss of tellkit's step on the device against the CPU path, on the tiny Llama (same data, seed):
   fp32 (should agree to ~1e-4) and bf16 autocast (to a few %);
3. per model, tellkit's step and TRL's SFTTrainer side by side, bf16, the same LoRA (r 8, all linear),
   the same real-length mixture (benchmarks/data/real_mixture_lengths.json: the lengths and supervised
   spans of the orders + Alpaca-demo TELL mixture, ratio 10, 8 examples per step, max_length 512; the
   token ids are random): tok/s of real tokens, peak `torch.cuda.max_memory_allocated`, and tellkit's
   memory estimate against it (with the activation factor that would make it exact: memory.ACT_SCALE
   ["bf16"]["cuda"]); Liger's kernels (TRL's `use_liger_kernel`, and tellkit with Liger's RMSNorm/
   SwiGLU/RoPE) when liger-kernel imports;
4. vLLM generation through tellkit's backend, when vllm imports (tiny Llama, a few prompts).
Each piece runs in its own process (its own peak memory; a crash or OOM is a row, not the end), within
`--budget-s` (what does not fit is listed as skipped). Writes OUT/gpu_check.md and OUT/gpu_check.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common

HERE = Path(__file__).resolve().parent
LENGTHS = HERE / "data" / "real_mixture_lengths.json"
# From the published config.json files (shapes only: rope scaling and the like change neither speed nor memory).
MODELS = {
    "llama-3.2-1b": ("llama", {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
                               "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64,
                               "vocab_size": 128256, "tie_word_embeddings": True}),
    "qwen2.5-1.5b": ("qwen2", {"hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
                               "num_attention_heads": 12, "num_key_value_heads": 2, "vocab_size": 151936,
                               "tie_word_embeddings": True}),
}
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2}
ARMS = ["tellkit", "tellkit+ckpt", "trl-padded", "trl-padded-nockpt", "trl-packed-nockpt",
        "trl-padded-liger", "tellkit+liger"]
PER_STEP = 8  # examples per optimizer step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, type=Path, help="folder for gpu_check.md and gpu_check.json")
    ap.add_argument("--tiny", action="store_true", help="tiny shapes on whatever device there is (CI: CPU)")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--arms", default=",".join(ARMS))
    ap.add_argument("--steps", type=int, help="optimizer steps per arm (default 6; --tiny 3); the first is warm-up")
    ap.add_argument("--budget-s", type=float, default=540, help="stop starting new pieces after this long")
    ap.add_argument("--job", help=argparse.SUPPRESS)  # internal: one piece, in this process
    ap.add_argument("--write-lengths", action="store_true", help="rewrite data/real_mixture_lengths.json "
                    "(tokenizes the mixture with smollm2-135m-instruct; not needed to run the check)")
    a = ap.parse_args()
    if a.job:
        print("RESULT " + json.dumps(run_job(json.loads(a.job))), flush=True)
        return
    if a.write_lengths:
        return write_lengths()
    check(a)


def check(a) -> None:
    import torch

    start, rows = time.monotonic(), []
    steps = a.steps or (3 if a.tiny else 6)
    cuda = torch.cuda.is_available()
    a.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="tellkit-gpu-check-"))
    left = lambda: a.budget_s - (time.monotonic() - start)  # noqa: E731

    def piece(job: dict, cpu_only: bool = False) -> dict:
        if left() < 20:
            return {"status": "skipped: time budget"}
        if a.tiny and not cpu_only:  # tiny pieces are quick: one process, no start-up per piece
            return _guarded(run_job, job)
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", **({"CUDA_VISIBLE_DEVICES": ""} if cpu_only else {})}
        p = subprocess.run([sys.executable, __file__, "--job", json.dumps(job)], capture_output=True, text=True,
                           env=env, timeout=max(20, left()))
        line = next((ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")), None)
        return json.loads(line[7:]) if line else {"status": "failed: " + _last_line(p.stderr)}

    tiny_llama = build_model("llama-3.2-1b", work, tiny=True)
    ref = {"kind": "train", "model": str(tiny_llama), "arm": "tellkit", "steps": steps, "max_length": 256}
    cpu = piece({**ref, "bf16": False}, cpu_only=cuda)
    for bf16, tol in ((False, 1e-3), (True, 5e-2)):
        dev = piece({**ref, "bf16": bf16})
        rows.append({"check": "loss vs CPU fp32", "model": "tiny llama", "arm": "tellkit",
                     "precision": "bf16 autocast" if bf16 else "fp32", **_loss_vs(dev, cpu, tol)})
    for name in a.models.split(","):
        folder = build_model(name, work, tiny=a.tiny)
        results = [(arm, piece({"kind": "train", "model": str(folder), "arm": arm, "steps": steps, "bf16": cuda,
                                "max_length": 256 if a.tiny else 512}))
                   for arm in a.arms.split(",")]
        default = next((r for arm, r in results if arm == "trl-padded" and "tok_s" in r), None)
        for arm, r in results:
            rows.append({"check": "train side by side", "model": name + (" (tiny)" if a.tiny else ""), "arm": arm,
                         "precision": "bf16 autocast" if cuda else "fp32", **r,
                         "vs_trl": r["tok_s"] / default["tok_s"] if default and "tok_s" in r else None})
    rows.append({"check": "vLLM generation", "model": "tiny llama", "arm": "eval.backend vllm",
                 **piece({"kind": "vllm", "model": str(tiny_llama)})})
    env = environment()
    (a.out / "gpu_check.json").write_text(json.dumps({"environment": env, "rows": rows}, indent=1))
    (a.out / "gpu_check.md").write_text(markdown(env, rows, steps, time.monotonic() - start))
    print((a.out / "gpu_check.md").read_text())


def build_model(name: str, work: Path, tiny: bool) -> Path:
    """A random-weight model of `name`'s shape (tiny: the same architecture, tiny sizes), saved with
    tellkit's offline tiny tokenizer; nothing is downloaded."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from tellkit.models.tiny import build_tiny_model

    folder = work / (name + ("-tiny" if tiny else ""))
    if (folder / "config.json").exists():
        return folder
    tokenizer = AutoTokenizer.from_pretrained(build_tiny_model(work / "tokenizer-source"))
    arch, shape = MODELS[name]
    shape = {**shape, **TINY, "vocab_size": len(tokenizer)} if tiny else shape
    if arch != "llama":
        shape.pop("head_dim", None)
    config = AutoConfig.for_model(arch, **shape, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                  pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    cuda = torch.cuda.is_available()
    with torch.device("cuda" if cuda else "cpu"):  # random init of a 1.5B model is minutes on a CPU
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16 if cuda and not tiny else torch.float32)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del model
    return folder


def mixture(vocab: int, max_length: int, n: int, seed: int = 0) -> list[dict]:
    """`n` examples with the real mixture's lengths and supervised spans (cut to max_length), random ids."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = []
    for length, spans, task in json.loads(LENGTHS.read_text())["examples"]:
        length = min(length, max_length)
        ids = rng.integers(3, vocab, length).tolist()
        labels = [-100] * length
        for a, b in spans:
            labels[a:min(b, length)] = ids[a:min(b, length)]
        if any(x != -100 for x in labels):
            out.append({"input_ids": ids, "labels": labels, "task": task})
        if len(out) == n:
            break
    return out


def run_job(job: dict) -> dict:
    """One piece in this process: "train" (an arm over the mixture) or "vllm"."""
    if job["kind"] == "vllm":
        return vllm_job(job)
    import bench_train
    import torch
    from transformers import AutoConfig

    bench_train.WEIGHTS = "bfloat16" if torch.cuda.is_available() and job["bf16"] else "float32"
    arm, steps, length = job["arm"], job["steps"], job["max_length"]
    vocab = AutoConfig.from_pretrained(job["model"]).vocab_size
    data = mixture(vocab, length, PER_STEP * steps)
    times = bench_train.StepTimes()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    if "liger" in arm:
        try:
            import liger_kernel  # noqa: F401
        except ImportError:
            return {"status": "skipped: liger-kernel not installed"}
    if arm.startswith("tellkit"):
        if "liger" in arm:
            _liger_layers(job["model"])
        bench_train.train_tellkit(job["model"], data, PER_STEP, length, steps, "ckpt" in arm, times, job["bf16"],
                                  keep=False)
    else:
        if "trl" in arm and not _has("trl"):
            return {"status": "skipped: trl not installed (pip install 'tellkit[bench]')"}
        packed = "packed" in arm
        rows = max(1, round(sum(len(e["input_ids"]) for e in data) / steps / length)) if packed else PER_STEP
        bench_train.train_trl(job["model"], data, rows, length, steps, packed=packed, ckpt="nockpt" not in arm,
                              times=times, bf16=job["bf16"], liger="liger" in arm)
    out = {"status": "ok", "tok_s": sum(times.tokens[1:]) / (times.t[-1] - times.t[0]), "losses": times.losses,
           "padding": 1 - sum(times.tokens) / max(sum(times.slots), 1)}
    if torch.cuda.is_available():
        out |= {"peak_gib": torch.cuda.max_memory_allocated() / 2**30,
                "reserved_gib": torch.cuda.max_memory_reserved() / 2**30}
    est = getattr(times, "estimate", None)
    if est is not None:
        out["estimate_gib"] = est.total_gib
        if "peak_gib" in out:  # the activation factor that would have made the estimate exact
            from tellkit.train import memory

            used, _ = memory._scale(memory.CKPT_SCALE if est.gradient_checkpointing else memory.ACT_SCALE,
                                    est.precision, "cuda")
            out["exact_factor"] = used * (1 + (out["peak_gib"] - est.total_gib) / est.parts_gib["activations"])
    return out


def _liger_layers(model_path: str) -> None:
    """Liger's RMSNorm, SwiGLU and RoPE kernels, patched into transformers before the model loads; not its
    fused cross-entropy (tellkit has its own, on supervised positions only)."""
    from liger_kernel import transformers as lk
    from transformers import AutoConfig

    arch = AutoConfig.from_pretrained(model_path).model_type
    getattr(lk, f"apply_liger_kernel_to_{arch}")(rope=True, rms_norm=True, swiglu=True, cross_entropy=False,
                                                 fused_linear_cross_entropy=False)


def vllm_job(job: dict) -> dict:
    if not _has("vllm"):
        return {"status": "skipped: vllm not installed"}
    from transformers import AutoTokenizer

    from tellkit.generation.vllm_backend import generate_vllm

    tok = AutoTokenizer.from_pretrained(job["model"])
    t0 = time.perf_counter()
    outs = generate_vllm(job["model"], tok, [f"Say something about {i}." for i in range(16)], max_new_tokens=32)
    return {"status": f"ok: {len(outs)} outputs in {time.perf_counter() - t0:.1f} s (start-up included)"}


def _loss_vs(dev: dict, cpu: dict, tol: float) -> dict:
    if "losses" not in dev or "losses" not in cpu:
        return {"status": dev.get("status") if "losses" not in dev else "CPU reference " + cpu.get("status", "?")}
    diff = max(abs(x - y) / max(abs(y), 1e-9) for x, y in zip(dev["losses"], cpu["losses"]))
    return {"losses": dev["losses"], "loss_diff": diff,
            "status": f"{'ok' if diff <= tol else 'MISMATCH'}: max relative difference {diff:.1e} (tolerance {tol:g})"}


def environment() -> dict:
    import platform

    import torch

    from tellkit.train.attention import training_attention

    versions = {}
    for pkg in ("torch", "transformers", "peft", "accelerate", "trl", "liger-kernel", "flash-attn", "triton", "vllm"):
        try:
            from importlib import metadata

            versions[pkg] = metadata.version(pkg)
        except Exception:  # noqa: BLE001 - not installed is an answer here
            versions[pkg] = "-"
    return {"device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU only",
            "cpu": common.cpu_flags(), "python": platform.python_version(), "versions": versions,
            "training_attention": training_attention(True)}


def markdown(env: dict, rows: list[dict], steps: int, seconds: float) -> str:
    v = ", ".join(f"{k} {x}" for k, x in env["versions"].items())
    out = [f"GPU check ({time.strftime('%Y-%m-%d')}): {env['device']}; {env['cpu']}; Python {env['python']}; {v}; "
           f"tellkit's packed-row attention here: {env['training_attention']}; {steps} steps per arm "
           f"({PER_STEP} examples each, tok/s over the steps after the first); {seconds:.0f} s in all.", "",
           "| check | model | arm | precision | real tok/s | vs TRL default | peak allocated GiB | tellkit's estimate "
           "GiB (error) | exact act. factor | padding | status |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        est = ""
        if r.get("estimate_gib"):
            est = f"{r['estimate_gib']:.2f}" + (f" ({r['estimate_gib'] / r['peak_gib'] - 1:+.0%})" if r.get("peak_gib") else "")
        cells = [r["check"], r["model"], r["arm"], r.get("precision", ""),
                 f"{r['tok_s']:.0f}" if "tok_s" in r else "", f"{r['vs_trl']:.2f}x" if r.get("vs_trl") else "",
                 f"{r['peak_gib']:.2f}" if "peak_gib" in r else "", est,
                 f"{r['exact_factor']:.2f}" if "exact_factor" in r else "",
                 f"{r['padding']:.0%}" if r.get("padding") is not None else "", r.get("status", "")]
        out.append("| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |")
    return "\n".join(out) + "\n"


def write_lengths() -> None:
    from tellkit.models.resolve import resolve_model

    model = str(resolve_model("smollm2-135m-instruct"))
    examples = common.real_mixture_examples(Path(tempfile.mkdtemp()), model, 256, batch_size=PER_STEP, max_length=512)
    doc = json.loads(LENGTHS.read_text()) if LENGTHS.exists() else {}
    doc["examples"] = [[len(e["input_ids"]), _spans(e["labels"]), e["task"]] for e in examples]
    LENGTHS.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(f"wrote {LENGTHS} ({len(examples)} examples)")


def _spans(labels: list[int]) -> list[list[int]]:
    out, start = [], None
    for i, x in enumerate([*labels, -100]):
        if x != -100 and start is None:
            start = i
        elif x == -100 and start is not None:
            out.append([start, i])
            start = None
    return out


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _guarded(fn, job: dict) -> dict:
    try:
        return fn(job)
    except Exception as e:  # noqa: BLE001 - a failing piece is a row of the table
        return {"status": f"failed: {type(e).__name__}: {str(e)[:160]}"}


def _last_line(text: str) -> str:
    return (text.strip().splitlines() or ["no output"])[-1][:160]


if __name__ == "__main__":
    main()
