"""A dead run is not "running": run.json names its owner process, and a run whose owner is gone
(killed, e.g. for lack of memory) reads as interrupted, with how to resume it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from tellkit.cli import main
from tellkit.config import load_config
from tellkit.errors import TellkitError
from tellkit.runs.rundir import RunDir

BEGIN_THEN = """
import os, sys, time
from tellkit.config import load_config
from tellkit.runs.rundir import RunDir
cfg = load_config(sys.argv[1])
RunDir(cfg.output.dir).begin(cfg)
print("begun", flush=True)
time.sleep(float(sys.argv[2]))
"""


def owner_process(config_file, seconds: float) -> subprocess.Popen:
    """A process that claims the run folder, then lives for `seconds`."""
    child = subprocess.Popen([sys.executable, "-c", BEGIN_THEN, str(config_file), str(seconds)],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "begun"
    return child


def test_a_run_whose_owner_was_killed_is_interrupted(config_file, capsys):
    cfg = load_config(config_file)
    child = owner_process(config_file, 60)
    run = RunDir(cfg.output.dir)
    raw = json.loads(run.state_file.read_text())
    assert raw["status"] == "running" and raw["owner"]["pid"] == child.pid

    # while the owner lives, the run is running and no second process may claim it
    assert run.state()["status"] == "running"
    with pytest.raises(TellkitError, match="being trained right now by process"):
        run.check(cfg)
    assert main(["train", str(config_file)]) == 2
    assert "being trained right now" in capsys.readouterr().err

    child.send_signal(signal.SIGKILL)  # what the kernel's out-of-memory killer does
    child.wait()
    state = run.state()
    assert state["status"] == "interrupted"
    assert f"pid {child.pid}" in state["reason"] and "rerun the same command" in state["reason"]
    assert json.loads(run.state_file.read_text())["status"] == "running"  # reading changes nothing on disk
    with pytest.raises(TellkitError, match="is interrupted: the process that ran it"):
        run.require_complete()
    assert run.check(cfg) is not None  # the same config resumes it

    # `tellkit report` says so too
    assert main(["report", str(run.path)]) == 0
    report = (run.path / "report.md").read_text()
    assert "interrupted" in report and "rerun the same command" in report

    # and `validate` tells what will happen
    assert main(["validate", str(config_file)]) == 0
    out = capsys.readouterr().out
    assert "holds this run (interrupted)" in out and "rerun the same command" in out


def test_a_run_that_ended_without_a_word_is_interrupted(config_file):
    child = owner_process(config_file, 0)
    child.wait()
    assert RunDir(load_config(config_file).output.dir).state()["status"] == "interrupted"


def test_a_recycled_pid_is_not_the_owner(config_file):
    cfg = load_config(config_file)
    run = RunDir(cfg.output.dir)
    run.begin(cfg)
    assert run.state()["status"] == "running"  # this very process owns it
    owner = run.state()["owner"]
    run.update(owner={**owner, "since": owner["since"] - 3600})  # same pid, another process's start time
    assert run.state()["status"] == "interrupted"


def test_without_owner_or_on_another_host_it_stays_running(config_file):
    cfg = load_config(config_file)
    run = RunDir(cfg.output.dir)
    run.begin(cfg)
    run.update(owner={"pid": 1, "host": "some-other-machine", "since": time.time()})
    assert run.state()["status"] == "running"  # this machine cannot tell
    with pytest.raises(TellkitError, match=r"running \(or was killed\)"):
        run.require_complete()
    state = run.state()
    state.pop("owner")
    run.state_file.write_text(json.dumps(state))  # a run folder from before owners were recorded
    assert run.state()["status"] == "running"
