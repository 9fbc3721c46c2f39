"""Training speed when something else runs: tellkit's step alone and beside a CPU hog, per thread setting.

    python benchmarks/bench_contention.py --model smollm2-135m-instruct --dtype bf16        # every arm, ~20 min
    python benchmarks/bench_contention.py --model smollm2-135m-instruct --loads hog --settings all/default,free/passive
    python benchmarks/bench_contention.py --steps 3                                         # tiny model, smoke test

Why (issue 29): on a 2-core machine one other process cut a TELL training from 406 to 97 tok/s, a
`nice -n 19` compiler from ~3.5 to 27 s per step: far more than the 2x that losing one core explains.
The suspect is OpenMP: threads = cores, spinning at the barrier that ends every parallel region while
one of them is descheduled. tellkit/threads.py's remedy: threads = the cores free at start, and
OMP_WAIT_POLICY=PASSIVE. This measures both, arm by arm:

- load: `alone`; `hog` (one busy-looping process at normal priority, started a second before
  training, so a "free cores" choice sees it); `nice-hog` (the same at `nice -n 19`, like a compiler
  a user runs at low priority);
- setting THREADS/POLICY: THREADS `all` (one per core: PyTorch's default) or `free` (the cores free
  when training starts, tellkit's choice); POLICY `default` (libgomp's: spin a while, then sleep),
  `active` or `passive`. `all/default` is tellkit before the fix, `free/passive` what the `tellkit`
  command now sets up.

Each arm is a fresh process running bench_train.py's tellkit arm (tellkit's training step over uniform
synthetic examples of `--shape` ROWSxMAX_LENGTH, 4 examples a row) with the malloc the `tellkit`
command preloads; tok/s counts the steps after the first. Load and thread settings change the absolute
numbers on a shared machine: compare the arms of one run (the "vs alone" column), and run it when
nothing else does.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common

LOADS = ["alone", "hog", "nice-hog"]
SETTINGS = ["all/default", "all/active", "all/passive", "free/default", "free/passive", "free/tellkit"]
HOG = "while True: pass"  # one core's worth of work that never sleeps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--shape", default="8x512", help="ROWSxMAX_LENGTH of one micro-batch (4 examples a row)")
    ap.add_argument("--steps", type=int, default=6, help="optimizer steps per arm (the first is warm-up)")
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--loads", default=",".join(LOADS))
    ap.add_argument("--settings", default=",".join(SETTINGS), help="THREADS/POLICY, THREADS all|free|N, "
                    "POLICY default|active|passive|tellkit (the command's choice)")
    a = ap.parse_args()
    from tellkit import threads

    results = []
    with tempfile.TemporaryDirectory(prefix="tellkit-bench-contention-") as tmp:
        model_path = common.resolve(a.model, Path(tmp))
        for load in a.loads.split(","):
            for setting in a.settings.split(","):
                results.append(run(load, setting, model_path, a))
                r = results[-1]
                print(f"{load} {setting}: {r.get('tok_s', 0):.1f} tok/s on {r.get('threads')} threads "
                      f"(busy cores at start {r['busy']:.2f})", flush=True)
    print(f"\nmachine: {common.machine()}; {common.cpu_flags()}; {threads.cores()} cores for this process; "
          f"malloc {common.malloc_kind()}; model {a.model}, {a.dtype}, micro-batch {a.shape}, {a.steps} steps per arm\n")
    print("| load | threads | OpenMP wait | busy cores at start | real tok/s | median s/step | slowest s/step "
          "| vs alone, same setting |")
    print("|---|---|---|---|---|---|---|---|")
    alone = {r["setting"]: r for r in results if r["load"] == "alone" and "tok_s" in r}
    for r in results:
        if "tok_s" not in r:
            print(f"| {r['load']} | {r['setting']} | | {r['busy']:.2f} | failed: {r['error']} | | | |")
            continue
        rel = f"{r['tok_s'] / alone[r['setting']]['tok_s']:.2f}x" if r["setting"] in alone else ""
        print(f"| {r['load']} | {r['threads']} ({r['setting'].split('/')[0]}) | {r['setting'].split('/')[1]} "
              f"| {r['busy']:.2f} | {r['tok_s']:.1f} | {r['median_s']:.2f} | {r['max_s']:.2f} | {rel} |")


def run(load: str, setting: str, model_path: str, a) -> dict:
    """One arm: start the load, choose the threads as the setting says, train in a fresh process."""
    from tellkit import threads

    hog = None
    if load != "alone":
        nice = ["nice", "-n", "19"] if load == "nice-hog" else []
        hog = subprocess.Popen([*nice, sys.executable, "-c", HOG])
        time.sleep(1.0)  # running before training starts, as a compiler or another job would be
    try:
        busy = threads.busy_cores()
        env = arm_env(setting, busy)
        cmd = [sys.executable, str(Path(__file__).with_name("bench_train.py")), "--arm", "tellkit",
               "--shape", a.shape, "--model-path", model_path, "--steps", str(a.steps), "--dtype", a.dtype]
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    out = {"load": load, "setting": setting, "busy": busy}
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        return out | {"error": (p.stderr.strip().splitlines() or ["failed"])[-1][:120]}
    r = json.loads(line[7:])
    steps = r.get("step_seconds") or []
    return out | {"tok_s": r["tok_s"], "threads": r["threads"], "wait": r["wait"],
                  "median_s": statistics.median(steps) if steps else float("nan"),
                  "max_s": max(steps) if steps else float("nan")}


def arm_env(setting: str, busy: float) -> dict:
    """The child's environment: the command's malloc, OMP_NUM_THREADS and OMP_WAIT_POLICY as set."""
    from tellkit import allocator, threads

    how, policy = setting.split("/")
    n = threads.cores() if how == "all" else threads.choose(threads.cores(), busy) if how == "free" else int(how)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "_TELLKIT_THREADS"))}
    lib = allocator.preferred()
    if lib and Path(lib).is_file() and not any(k in env.get("LD_PRELOAD", "") for k in allocator._KNOWN):
        env = allocator.preload_env(lib, env)
    env |= {"OMP_NUM_THREADS": str(n), "MKL_NUM_THREADS": str(n), "TOKENIZERS_PARALLELISM": "false"}
    if policy == "tellkit":  # what the command chooses (threads.configure): passive only when sharing cores
        policy = "passive" if n < threads.cores() else "default"
    if policy != "default":
        env["OMP_WAIT_POLICY"] = policy.upper()
    return env

if __name__ == "__main__":
    main()
