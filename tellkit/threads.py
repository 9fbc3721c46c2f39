"""How many CPU threads a tellkit process computes with, and how its OpenMP threads wait.

Why: PyTorch's CPU kernels run OpenMP parallel regions, one thread per core by default, and every
region ends at a barrier where the threads wait for the slowest. libgomp's threads spin there. When
another process holds one of the cores, the thread that shares it is descheduled for whole scheduler
slices while the others spin, and a training step has tens of thousands of regions: on a 2-core
machine one other process cut a TELL training from 406 to 97 tok/s, and a `nice -n 19` compiler
from ~3.5 to 27 s per step (issue 29), far worse than the 2x that losing one core would explain.

What the `tellkit` command does about it, before OpenMP starts (the environment is read once, when
torch loads libgomp; `configure()` runs at the top of `cli.main`, and the allocator's re-exec passes
the environment on):
- threads = the cores that are free at start: per-CPU busy time is sampled for a moment (psutil)
  over the cores this process may run on (its affinity mask, capped by a container's CPU quota), and
  a core counts as taken when other work keeps it more than half busy. Niced processes do not count:
  the scheduler gives a `nice -n 19` process about 1.5% of a core shared with ours, and measured beside
  one (benchmarks/README.md, 2026-12-05) training on every core lost nothing (537 vs 502 tok/s alone),
  while giving up a core for it cost a third;
- OMP_WAIT_POLICY=PASSIVE, only when it trains on fewer threads than cores (the machine is shared): a
  thread that waits at a barrier sleeps instead of spinning, so a shared core is handed over rather than
  burnt. With every core free libgomp's default (spin, then sleep) is kept: measured side by side
  (SmolLM2-135M, bf16, 2x512 rows, benchmarks/README.md) passive waits cost 7-16% alone and 35% beside a
  niced job, while beside a normal-priority hog they gained 1.7x (313 vs 184 tok/s on 2 threads; 329 on
  the 1 free thread). A load that starts after training did is not caught by either choice; the
  progress bar then says "machine busy" (train/callbacks.py), and OMP_WAIT_POLICY=PASSIVE is yours to set
  on a machine you share.
`benchmarks/bench_contention.py` measures both, alone and beside a CPU hog.

You choose with `TELLKIT_THREADS=N` (a count), `all` (every core, the PyTorch default) or `auto`
(the default); an `OMP_NUM_THREADS` or `OMP_WAIT_POLICY` that you or a launcher set is kept
(`tellkit sweep --workers N` gives each worker its share that way). From Python (`tellkit.api`), where
torch is usually imported already, training only lowers torch's thread count to the free cores
(the wait policy is then whatever the environment had when torch loaded). run.json records the
outcome under `train`: `threads`, `omp_wait_policy`, `cores`, `busy_cores_at_start`, `thread_source`.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

ENV = "TELLKIT_THREADS"
WAIT_POLICY = "PASSIVE"  # what tellkit sets when it shares the cores and nobody else chose: module docstring
LIBGOMP_DEFAULT = "libgomp default (spin, then sleep)"
_MARK = "_TELLKIT_THREADS_CHOICE"  # the choice made at start, for this process, its re-exec and children
SAMPLE_SECONDS = 0.2  # long enough for 20 scheduler ticks per CPU (USER_HZ 100), short next to torch's import
_cached: dict | None = None  # the API path measures once per process


def cores() -> int:
    """The CPUs this process may run on: its affinity mask (which taskset and cpusets narrow), and no more
    than a container's CPU quota (cgroup v2 cpu.max: "200000 100000" is 2 CPUs), which threads beyond it
    would only wait on."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            n = min(n, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return n


def busy_cores(seconds: float = SAMPLE_SECONDS) -> float:
    """How many of this process's CPUs other work keeps busy, summed over them (0.0 .. cores()),
    from the kernel's per-CPU time counters over `seconds` (this process sleeps meanwhile)."""
    import psutil

    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    before = psutil.cpu_times(percpu=True)
    time.sleep(seconds)
    after = psutil.cpu_times(percpu=True)
    busy = 0.0
    for i, (a, b) in enumerate(zip(before, after)):
        if allowed is not None and i not in allowed:
            continue
        total = sum(b) - sum(a)
        # waiting on disk is idle, and so is niced work: it yields the core to ours (module docstring)
        idle = sum(getattr(b, k, 0.0) - getattr(a, k, 0.0) for k in ("idle", "iowait", "nice"))
        busy += max(0.0, min(1.0, 1 - idle / total)) if total > 0 else 0.0
    return busy


def choose(n_cores: int, busy: float, setting: str = "auto") -> int:
    """Threads for `setting` (TELLKIT_THREADS): a count, "all", or "auto" = the cores not taken by
    other work (a core more than half busy is taken), never fewer than one."""
    setting = (setting or "auto").strip().lower()
    if setting == "all":
        return n_cores
    if setting != "auto":
        try:
            return max(1, int(setting))
        except ValueError:
            raise ValueError(f"{ENV}={setting!r}: use a number of threads, 'all' or 'auto'") from None
    return max(1, min(n_cores, n_cores - int(busy + 0.5)))


def configure(environ=None, sample=busy_cores) -> dict:
    """Choose the thread count and wait policy and put them in `environ` (default os.environ: before torch
    is imported; or a child process's environment); returns the record. Only the first call of a process
    tree decides (the allocator's re-exec and tellkit's worker processes inherit the choice)."""
    env = os.environ if environ is None else environ
    if _MARK in env:
        return json.loads(env[_MARK])
    n = cores()
    record = {"cores": n, "busy_cores_at_start": None}
    if env.get("OMP_NUM_THREADS"):
        record |= {"threads": _int(env["OMP_NUM_THREADS"], n), "thread_source": "OMP_NUM_THREADS"}
    else:
        setting = env.get(ENV, "auto").strip().lower()
        try:
            choose(n, 0.0, setting)
        except ValueError as e:  # a typo in the variable must not stop the command
            print(f"warning: {e}; using auto", file=sys.stderr)
            setting = "auto"
        busy = _measured(sample) if setting == "auto" else None
        record |= {"threads": choose(n, busy or 0.0, setting),
                   "thread_source": "free cores at start" if setting == "auto" else ENV,
                   "busy_cores_at_start": None if busy is None else round(busy, 2)}
        env["OMP_NUM_THREADS"] = str(record["threads"])
        env.setdefault("MKL_NUM_THREADS", str(record["threads"]))
    if env.get("OMP_WAIT_POLICY"):
        record |= {"omp_wait_policy": env["OMP_WAIT_POLICY"], "wait_policy_source": "OMP_WAIT_POLICY"}
    elif record["threads"] < n:  # sharing the machine: a waiting thread hands its core over
        env["OMP_WAIT_POLICY"] = WAIT_POLICY
        record |= {"omp_wait_policy": WAIT_POLICY, "wait_policy_source": "tellkit"}
    else:  # every core free: spinning waits are the faster ones (module docstring)
        record |= {"omp_wait_policy": LIBGOMP_DEFAULT, "wait_policy_source": "not set: every core was free"}
    if record["wait_policy_source"] == "tellkit" and env is os.environ and "torch" in sys.modules:
        # libgomp read this process's environment already
        record["wait_policy_source"] = "set after torch loaded: not in effect"
    env[_MARK] = json.dumps(record)
    return record


def for_training(sample=busy_cores) -> dict:
    """What training runs with (torch imported). Under the `tellkit` command: its start-up choice.
    Called from Python: torch's thread count lowered to the free cores (measured once per process)
    unless OMP_NUM_THREADS or TELLKIT_THREADS decides; never raised above what torch has."""
    global _cached
    import torch

    if _MARK in os.environ:
        record = dict(json.loads(os.environ[_MARK]))
    elif _cached is not None:
        record = dict(_cached)
    else:
        n = cores()
        record = {"cores": n, "busy_cores_at_start": None,
                  "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY") or LIBGOMP_DEFAULT,
                  "wait_policy_source": "OMP_WAIT_POLICY" if os.environ.get("OMP_WAIT_POLICY") else "not set"}
        if os.environ.get("OMP_NUM_THREADS"):
            record |= {"thread_source": "OMP_NUM_THREADS"}
        elif os.environ.get(ENV, "auto").strip().lower() != "auto":
            want = choose(n, 0.0, os.environ[ENV])
            torch.set_num_threads(want)
            record |= {"thread_source": ENV}
        else:
            busy = _measured(sample)
            want = min(torch.get_num_threads(), choose(n, busy or 0.0))
            if want != torch.get_num_threads():
                torch.set_num_threads(want)
            record |= {"thread_source": "free cores at start",
                       "busy_cores_at_start": None if busy is None else round(busy, 2)}
        _cached = record
    record["threads"] = torch.get_num_threads()  # what the kernels use now (a worker's share, say)
    return record


def _measured(sample) -> float | None:
    """The busy cores, or None where the counters cannot be read (then every core counts as free)."""
    try:
        return sample()
    except Exception:  # noqa: BLE001 - no /proc, a sandbox: the thread choice must never stop a command
        return None


def _int(value: str, default: int) -> int:
    try:
        return max(1, int(value))
    except ValueError:
        return default
