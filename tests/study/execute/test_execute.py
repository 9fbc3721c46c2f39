"""Execution of a planned grid: serial, --workers, Ray, a killed worker, a sweep split over invocations."""

import json
import sys
import textwrap

import pytest

from tellkit.cli import main

GRID = ["sweep.ratios=[2]", "sweep.task_tokens=[150]", "sweep.seeds=[0]", "sweep.methods=[tell,sft,sft-matched]",
        "eval.max_new_tokens=4", "eval.limit=4"]
TIMING = ("wall_seconds",)


def _rows(out):
    rows = json.loads((out / "sweep.json").read_text())["rows"]
    return sorted(({k: v for k, v in r.items() if k not in TIMING} for r in rows), key=lambda r: r["method"])


def _starts(out):
    return {p.stem: sum(json.loads(line)["event"] == "start" for line in p.read_text().splitlines())
            for p in (out / "log").glob("*.jsonl")}


def test_serial_workers_and_ray_give_identical_rows(config_file, capsys):
    ray = pytest.importorskip("ray")
    del ray
    rows = {}
    for mode, extra in (("serial", []), ("workers", ["--workers", "2"]), ("ray", ["--ray", "local"])):
        out = config_file.parent / mode
        assert main(["sweep", str(config_file), *GRID, "train.max_steps=2", f"output.dir={out}", *extra]) == 0, \
            capsys.readouterr().err
        rows[mode] = _rows(out)
        assert _starts(out) == {"tell-t150-r2-s0": 1, "sft-t150-r0-s0": 1, "sft-matched-t150-r2-s0": 1}
        plan = json.loads((out / "plan.json").read_text())
        assert plan["cells"][2]["depends_on"] == "tell-t150-r2-s0"  # sft-matched waits for its TELL cell
    assert all(r["fingerprint"] for r in rows["serial"]) and len(rows["serial"]) == 3
    assert rows["serial"] == rows["workers"] == rows["ray"]


KILLER = """
import os, signal, sys
from pathlib import Path
import transformers

VICTIM, MARKER = {victim!r}, Path({marker!r})
original = transformers.Trainer._save_checkpoint

def save_then_die(self, *args, **kwargs):
    original(self, *args, **kwargs)
    if sys.argv[2] == VICTIM and not MARKER.exists():  # the first save of the victim's first attempt
        MARKER.write_text("killed")
        os.kill(os.getpid(), signal.SIGKILL)

transformers.Trainer._save_checkpoint = save_then_die
from tellkit.study.execute.cell import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_killed_worker_has_its_cell_resumed_and_no_cell_runs_twice(config_file, capsys, monkeypatch):
    from tellkit.study.execute import local

    victim = "tell-t150-r2-s0"
    wrapper = config_file.parent / "killer.py"
    wrapper.write_text(textwrap.dedent(KILLER.format(victim=victim, marker=str(config_file.parent / "killed"))))
    monkeypatch.setattr(local, "cell_command", lambda folder, name: [sys.executable, str(wrapper), str(folder), name])
    out = config_file.parent / "run"
    args = ["sweep", str(config_file), *GRID, "train.max_steps=4", "train.save_steps=2", "--workers", "2"]
    assert main(args) == 0, capsys.readouterr().err
    assert (config_file.parent / "killed").exists() and "died (SIGKILL)" in capsys.readouterr().err
    assert _starts(out) == {victim: 2, "sft-t150-r0-s0": 1, "sft-matched-t150-r2-s0": 1}
    state = json.loads((out / "cells" / victim / "run.json").read_text())
    assert state["status"] == "complete" and state["train"]["resumed_from"].endswith("checkpoint-2")
    assert (out / "sweep.json").exists()
    # rerunning the finished sweep trains nothing
    assert main(args) == 0
    assert _starts(out) == {victim: 2, "sft-t150-r0-s0": 1, "sft-matched-t150-r2-s0": 1}


def test_a_sweep_split_by_scale_runs_the_cells_of_one_invocation(config_file, capsys):
    from tellkit.api import load
    from tellkit.mix.prepare import prepare
    from tellkit.study.sweep import plan_sweep

    grid = ["sweep.ratios=[0,2]", "sweep.task_tokens=[150,300]", "sweep.seeds=[0]",
            "sweep.methods=[tell,general-only]", "eval.max_new_tokens=2", "eval.limit=2", "train.max_steps=1"]
    out = config_file.parent / "run"
    assert main(["sweep", str(config_file), *grid, "--only", "task_tokens=150"]) == 0, capsys.readouterr().err
    assert "2 of 5 planned cells are done" in capsys.readouterr().out
    assert not (out / "sweep.json").exists()  # the summary waits for every cell
    assert main(["report", str(out)]) == 0  # ... or `tellkit report` writes the partial results
    assert "Partial results: 2 of 5 planned cells" in (out / "report.md").read_text()
    (out / "sweep.json").unlink()
    # the trap of splitting by config: alone, the 150-token grid would pick another general-only cell
    alone = plan_sweep(load(config_file, grid + ["sweep.task_tokens=[150]"]), out, prepare(load(config_file)))
    assert "general-only-t150-r2-s0" in {c.name for c in alone.cells}
    assert main(["sweep", str(config_file), *grid, "--only", "task_tokens=300"]) == 0
    cfg = load(config_file, grid)
    one = plan_sweep(cfg, out, prepare(cfg))
    assert json.loads((out / "plan.json").read_text())["identity"] == one.identity()
    trained = sorted(p.name for p in (out / "cells").iterdir())
    assert trained == sorted(c.name for c in one.cells) == [
        "general-only-t300-r2-s0", "tell-t150-r0-s0", "tell-t150-r2-s0", "tell-t300-r0-s0", "tell-t300-r2-s0"]
    assert json.loads((out / "sweep.json").read_text())["summary"]["cells"] == 5
    # another grid in the same folder is refused, naming what differs
    assert main(["sweep", str(config_file), *grid[:-1], "train.max_steps=2"]) == 2
    assert "--replan" in capsys.readouterr().err


def test_workers_start_a_cell_only_while_its_memory_estimate_fits_beside_the_running_ones(config_file, capsys):
    from tellkit.api import load
    from tellkit.mix.prepare import prepare
    from tellkit.study.sweep import plan_sweep

    grid = ["sweep.ratios=[2]", "sweep.task_tokens=[150]", "sweep.seeds=[0]", "sweep.methods=[tell,sft]",
            "eval.max_new_tokens=2", "eval.limit=2", "train.max_steps=2"]
    cfg = load(config_file, grid)
    memory = plan_sweep(cfg, config_file.parent / "plan", prepare(cfg)).memory_gib
    assert set(memory) == {"tell-t150-r2-s0", "sft-t150-r0-s0"} and all(v > 0 for v in memory.values())
    # room for the larger cell alone, not for both: the second waits although a worker is free
    budget = f"train.memory_budget_gb={1.5 * max(memory.values()):.3f}"
    assert main(["sweep", str(config_file), *grid, budget, "--workers", "2"]) == 0, capsys.readouterr().err
    assert "fewer than 2 may run at once" in capsys.readouterr().err
    out = config_file.parent / "run"
    spans = []
    for name in memory:
        ev = [json.loads(line) for line in (out / "log" / f"{name}.jsonl").read_text().splitlines()]
        spans.append((ev[0]["time"], ev[-1]["time"]))
    (a_start, a_end), (b_start, b_end) = sorted(spans)
    assert a_end <= b_start  # one after the other
    assert json.loads((out / "plan.json").read_text())["memory_gib"] == memory
