"""Cells on this machine: one after another in this process, or `--workers N` processes at a time.

With workers every cell runs in a fresh process (`python -m tellkit.study.execute.cell`), so a cell's
memory, CUDA context and thread pool end with it. On a GPU machine worker slot i gets one device
(CUDA_VISIBLE_DEVICES); on CPU the cores are split between the workers (torch threads per worker),
because N processes each using every core only contend, and the RAM is shared: a cell starts only
while the estimated peaks of the running cells and its own (plan.memory_gib) fit in the free RAM (or
train.memory_budget_gb), so `--workers` is an upper bound. A cell waits for the cell it depends on
(sft-matched on its TELL cell). A worker that dies by a signal (killed, OOM, preempted) has its cell
started again, which resumes from the cell's last checkpoint; a cell that ends with a user error is
reported, not retried (it would fail the same way).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from ...errors import ConfigError, TellkitError
from ...train.memory import available
from .cell import output_to_log, run_planned
from .plan import Plan
from .progress import Progress

MAX_RETRIES = 2  # a cell whose worker dies this many times more is reported as failed
POLL_SECONDS = 0.5


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def visible_gpus() -> list[str]:
    """The GPU ids this process may use, as CUDA_VISIBLE_DEVICES names them."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip() and d.strip() != "-1"]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def worker_env(slot: int, workers: int, gpus: list[str], n_cores: int) -> dict[str, str]:
    """The environment of worker `slot`: its GPU, or its share of the CPU cores."""
    threads = str(max(1, n_cores // workers))
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "TOKENIZERS_PARALLELISM": "false"}
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = gpus[slot]
    return env


def cell_command(folder, name: str) -> list[str]:
    return [sys.executable, "-m", "tellkit.study.execute.cell", str(folder), name]


def run_serial(plan: Plan, todo: list[str], progress: Progress, prepared=None) -> dict[str, str]:
    failures: dict[str, str] = {}
    for name in todo:
        dep = plan.cell(name).depends_on
        if dep in failures:
            failures[name] = f"its TELL cell {dep} failed"
            progress.fail(name, failures[name])
            continue
        progress.start(name)
        try:
            with output_to_log(plan, plan.cell(name)):
                run_planned(plan, name, prepared)
        except TellkitError as e:
            failures[name] = str(e)
            progress.fail(name, str(e))
            continue
        progress.done(name)
    return failures


def run_workers(plan: Plan, todo: list[str], workers: int, progress: Progress) -> dict[str, str]:
    gpus = visible_gpus()
    if gpus and workers > len(gpus):
        raise ConfigError(f"--workers {workers}, but {len(gpus)} GPU(s) are visible and each worker takes one; "
                          f"use --workers {len(gpus)}")
    n_cores = cores()
    ram = None if gpus else RamBudget(plan, todo, workers, progress)  # a GPU worker has its device's memory
    waiting, running, free = list(todo), {}, list(range(workers))
    attempts: dict[str, int] = {}
    failures: dict[str, str] = {}
    try:
        while waiting or running:
            for name in list(waiting):
                dep = plan.cell(name).depends_on
                if dep in failures:
                    waiting.remove(name)
                    failures[name] = f"its TELL cell {dep} failed"
                    progress.fail(name, failures[name])
                elif free and dep not in waiting and dep not in running:
                    if ram and not ram.admits(name, running):
                        break  # the next cell waits for memory; later ones too, so it is not starved
                    waiting.remove(name)
                    slot = free.pop(0)
                    running[name] = (slot, _spawn(plan, name, worker_env(slot, workers, gpus, n_cores)))
                    attempts[name] = attempts.get(name, 0) + 1
                    progress.start(name)
            time.sleep(POLL_SECONDS)
            for name, (slot, proc) in list(running.items()):
                rc = proc.poll()
                if rc is None:
                    continue
                del running[name]
                free = sorted(free + [slot])
                if rc == 0:
                    progress.done(name)
                elif rc < 0 and attempts[name] <= MAX_RETRIES:
                    waiting.insert(0, name)
                    progress.retry(name, f"its worker died ({signal.Signals(-rc).name})")
                else:
                    failures[name] = _reason(plan, name, rc)
                    progress.fail(name, failures[name])
    except BaseException:  # Ctrl-C or an error here: stop the workers; their cells resume on the next run
        for _, proc in running.values():
            proc.terminate()
        for _, proc in running.values():
            proc.wait()
        raise
    return failures


class RamBudget:
    """On CPU the workers share the RAM: admit a cell while the running cells' estimated peaks plus
    its own fit the budget (free RAM when the sweep starts, or train.memory_budget_gb). One cell
    always may run: alone it was checked to fit when the plan was made."""

    def __init__(self, plan: Plan, todo: list[str], workers: int, progress: Progress):
        self.gib, source, _ = available(plan.base_config())
        self.need = {n: plan.memory_gib.get(n, 0.0) for n in todo}
        largest = sorted(self.need.values(), reverse=True)[:workers]
        if len(largest) > 1 and sum(largest) > self.gib:
            progress.note(f"memory: the {len(largest)} largest cells need ~{sum(largest):.1f} GiB together "
                          f"(estimates, up to ~{largest[0]:.1f} GiB each) and {self.gib:.1f} GiB is the budget "
                          f"({source}): a cell starts only when its estimate fits beside the running ones, so "
                          f"fewer than {workers} may run at once")

    def admits(self, name: str, running) -> bool:
        return not running or sum(self.need[n] for n in running) + self.need[name] <= self.gib


def _spawn(plan: Plan, name: str, env: dict) -> subprocess.Popen:
    plan.log_dir.mkdir(parents=True, exist_ok=True)
    with open(plan.log_dir / f"{name}.log", "ab") as log:
        # its own session: a Ctrl-C reaches this process only, which then stops the workers itself
        return subprocess.Popen(cell_command(plan.folder, name), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _reason(plan: Plan, name: str, rc: int) -> str:
    log = plan.log_dir / f"{name}.log"
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines() if log.exists() else []
    errors = [ln[len("error: "):] for ln in lines if ln.startswith("error: ")]
    if errors:
        return errors[-1]
    if rc < 0:
        return f"its worker died ({signal.Signals(-rc).name}) {MAX_RETRIES + 1} times; see {log}"
    return f"its worker crashed (exit {rc}); traceback in {log}"
