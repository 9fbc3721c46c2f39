"""CPU threads under contention (tellkit/threads.py) and the "machine busy" note (train/callbacks.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import namedtuple

import numpy as np
import pytest
import torch
from transformers import TrainerControl, TrainerState

from tellkit import threads
from tellkit.train import callbacks
from tellkit.train.callbacks import BusyWatch, Progress

CpuTimes = namedtuple("CpuTimes", "user nice system idle iowait")


@pytest.mark.parametrize("busy, setting, expected", [
    (0.0, "auto", 2), (0.3, "auto", 2),  # light background work leaves both cores
    (0.9, "auto", 1), (1.0, "auto", 1),  # one core taken (a hog, a compiler)
    (2.0, "auto", 1),  # never fewer than one
    (1.0, "all", 2), (1.0, "3", 3), (0.0, " AUTO ", 2),
])
def test_threads_are_the_free_cores_unless_told(busy, setting, expected):
    assert threads.choose(2, busy, setting) == expected


def test_a_bad_setting_names_the_variable():
    with pytest.raises(ValueError, match="TELLKIT_THREADS"):
        threads.choose(2, 0.0, "many")


def test_busy_cores_come_from_the_per_cpu_counters(monkeypatch):
    import psutil

    samples = iter([
        [CpuTimes(0, 0, 0, 100, 0), CpuTimes(0, 0, 0, 100, 0), CpuTimes(0, 0, 0, 100, 0)],
        # cpu0 fully busy (user work), cpu1 idle (waiting on disk is idle), cpu2 busy but not ours
        [CpuTimes(20, 0, 0, 100, 0), CpuTimes(0, 0, 0, 110, 10), CpuTimes(20, 0, 0, 100, 0)],
    ])
    monkeypatch.setattr(psutil, "cpu_times", lambda percpu: next(samples))
    monkeypatch.setattr(threads.time, "sleep", lambda s: None)
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert threads.busy_cores() == pytest.approx(1.0)


def test_niced_work_leaves_a_core_free(monkeypatch):
    import psutil

    # cpu0 runs only a `nice -n 19` job, which yields to tellkit: the core is free for training
    samples = iter([[CpuTimes(0, 0, 0, 100, 0)] * 2, [CpuTimes(0, 20, 0, 100, 0), CpuTimes(0, 0, 0, 120, 0)]])
    monkeypatch.setattr(psutil, "cpu_times", lambda percpu: next(samples))
    monkeypatch.setattr(threads.time, "sleep", lambda s: None)
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert threads.busy_cores() == pytest.approx(0.0)


def test_every_core_free_keeps_libgomps_spinning_wait(monkeypatch):
    monkeypatch.setattr(threads, "cores", lambda: 2)
    env = {}
    record = threads.configure(env, sample=lambda: 0.0)
    assert env["OMP_NUM_THREADS"] == "2" and "OMP_WAIT_POLICY" not in env
    assert record["omp_wait_policy"] == threads.LIBGOMP_DEFAULT and record["wait_policy_source"].startswith("not set")


def test_configure_sets_threads_and_passive_wait_once(monkeypatch):
    monkeypatch.setattr(threads, "cores", lambda: 2)
    env, sampled = {}, []
    record = threads.configure(env, sample=lambda: sampled.append(1) or 1.0)
    assert env["OMP_NUM_THREADS"] == "1" and env["OMP_WAIT_POLICY"] == "PASSIVE"
    assert record == {"cores": 2, "busy_cores_at_start": 1.0, "threads": 1, "thread_source": "free cores at start",
                      "omp_wait_policy": "PASSIVE", "wait_policy_source": "tellkit"}
    assert threads.configure(env, sample=lambda: 0.0) == record and sampled == [1]  # the re-exec inherits it


def test_configure_keeps_what_the_user_or_a_launcher_set():
    env = {"OMP_NUM_THREADS": "3", "OMP_WAIT_POLICY": "active"}
    record = threads.configure(env, sample=lambda: pytest.fail("no measurement when the count is given"))
    assert env["OMP_NUM_THREADS"] == "3" and env["OMP_WAIT_POLICY"] == "active"
    assert record["thread_source"] == "OMP_NUM_THREADS" and record["wait_policy_source"] == "OMP_WAIT_POLICY"
    env = {"TELLKIT_THREADS": "all"}
    assert threads.configure(env, sample=lambda: pytest.fail("not sampled"))["threads"] == threads.cores()


def test_configure_never_stops_the_command(monkeypatch, capsys):
    def unreadable():
        raise PermissionError("/proc/stat")

    record = threads.configure({}, sample=unreadable)  # a sandbox without /proc: every core counts as free
    assert record["threads"] == threads.cores() and record["busy_cores_at_start"] is None
    record = threads.configure({"TELLKIT_THREADS": "many"}, sample=lambda: 0.0)
    assert record["thread_source"] == "free cores at start" and "TELLKIT_THREADS" in capsys.readouterr().err


def test_a_container_quota_caps_the_cores(monkeypatch, tmp_path):
    real = threads.Path
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    (tmp_path / "cpu.max").write_text("200000 100000\n")
    monkeypatch.setattr(threads, "Path", lambda p: tmp_path / "cpu.max" if p.endswith("cpu.max") else real(p))
    assert threads.cores() == 2
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert threads.cores() == 64


def test_configure_after_torch_loaded_says_the_policy_is_not_in_effect(monkeypatch):
    monkeypatch.setattr(threads.os, "environ", {})  # this process's environment, and torch is loaded here
    monkeypatch.setattr(threads, "cores", lambda: 2)
    record = threads.configure(sample=lambda: 1.0)
    assert record["wait_policy_source"].endswith("not in effect")


def test_libgomp_reads_the_policy_the_command_sets():
    # OMP_DISPLAY_ENV makes libgomp print the settings it started with, when torch loads it.
    code = ("from tellkit import threads; threads.configure(); import torch; "
            "x = torch.ones(256, 256); (x @ x).sum(); print(torch.get_num_threads())")
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith(("OMP_", "_TELLKIT", "TELLKIT_THR"))}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={**env, "OMP_DISPLAY_ENV": "TRUE", "TELLKIT_THREADS": "1"})
    assert "OMP_WAIT_POLICY = 'PASSIVE'" in p.stderr and "OMP_NUM_THREADS = '1'" in p.stderr
    assert p.stdout.strip() == "1"


def test_training_from_python_lowers_torch_threads_to_the_free_cores(monkeypatch):
    for name in ("OMP_NUM_THREADS", "TELLKIT_THREADS", threads._MARK):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(threads, "_cached", None)
    monkeypatch.setattr(threads, "cores", lambda: 2)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        record = threads.for_training(sample=lambda: 1.0)  # one of two cores busy
        assert record["threads"] == torch.get_num_threads() == 1
        assert record["busy_cores_at_start"] == 1.0 and record["thread_source"] == "free cores at start"
        torch.set_num_threads(2)
        monkeypatch.setattr(threads, "_cached", None)
        assert threads.for_training(sample=lambda: 0.0)["threads"] == 2  # an idle machine keeps them
        monkeypatch.setattr(threads, "_cached", None)
        torch.set_num_threads(1)
        assert threads.for_training(sample=lambda: 0.0)["threads"] == 1  # never more than the user set
        monkeypatch.setenv(threads._MARK, json.dumps({"cores": 2, "threads": 2, "omp_wait_policy": "PASSIVE"}))
        assert threads.for_training()["threads"] == 1  # what torch runs with, whatever the start chose
    finally:
        torch.set_num_threads(before)


def _steps(watch, rates, tokens=400):
    return [watch.update(tokens, tokens / r) for r in rates]


def test_busy_note_when_the_rate_falls_far_below_the_start():
    watch = BusyWatch()
    notes = _steps(watch, [100, 400, 410, 390, 400, 380, 150, 100, 90, 95, 400, 400, 400])
    assert notes[:7] == [None] * 7  # warm-up (slow by nature), the start, windows at >= half its rate
    assert notes[9] == "machine busy: 95 tok/s vs 400 at start"  # the last 3 steps: 1200 tokens in 12.7 s
    assert notes[-1] is None  # the machine freed up again
    assert watch.summary() == {"slow_steps": 5, "slowest_tok_s": 94.8, "start_tok_s": 399.8}


def test_one_slow_step_is_no_busy_machine():
    watch = BusyWatch()
    assert _steps(watch, [400] * 6 + [100] + [400] * 5) == [None] * 12  # a window of 3: 200 tok/s is the limit
    assert watch.summary() is None


def test_the_note_is_on_the_progress_bar(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: now[0])
    progress = Progress(np.full(9, 400))
    state, control = TrainerState(), TrainerControl()
    state.max_steps, state.is_world_process_zero = 9, True
    progress.on_train_begin(None, state, control)
    shown = []
    progress.bar.set_description = lambda d, refresh=True: shown.append(d)
    for step, seconds in enumerate([1] * 6 + [5] * 3, 1):  # 400 tokens a step: 400 tok/s, then 80
        progress.on_step_begin(None, state, control)
        now[0] += seconds
        state.global_step = step
        progress.on_step_end(None, state, control)
    progress.on_train_end(None, state, control)
    assert shown[:6] == ["train"] * 6
    assert shown[-1] == "train (machine busy: 80 tok/s vs 400 at start)"
