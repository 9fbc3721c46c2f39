"""kill -9 in the middle of training, run again: the same final adapter as a run never interrupted.

A real `python -m tellkit.cli run` child process is killed with SIGKILL right
after its second checkpoint folder appears (so usually while that checkpoint
is being written, which the HF Trainer does non-atomically). Measured on CPU
with the tiny model: the resumed adapter and loss log are bit-identical to the
uninterrupted run (max abs diff 0.0); the test allows 1e-6.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from tellkit.cli import main
from tellkit.errors import TellkitError
from tellkit.rundir import RunDir, checkpoint_complete

TOLERANCE = 1e-6
STEPS, SAVE = 6, 2


def test_kill_9_then_run_again_resumes_to_the_same_adapter(config_file, tmp_path):
    args = [str(config_file), "task.test_path=null", f"train.max_steps={STEPS}", f"train.save_steps={SAVE}",
            "train.batch_size=2"]
    base = config_file.parent
    ref, out = base / "ref", base / "out"

    # 1. the uninterrupted reference (in-process; same machine, config and seed)
    assert main(["run", *args, f"output.dir={ref}"]) == 0

    # 2. the same run in a child process, killed with SIGKILL as soon as its second checkpoint starts
    err = tmp_path / "killed.stderr"
    with open(err, "wb") as stderr:
        child = subprocess.Popen([sys.executable, "-m", "tellkit.cli", "run", *args, f"output.dir={out}"],
                                 stdout=subprocess.DEVNULL, stderr=stderr)
        second = out / "checkpoints" / f"checkpoint-{2 * SAVE}"
        deadline = time.monotonic() + 240
        try:
            while not second.exists():
                assert child.poll() is None, f"the run ended before it was killed:\n{err.read_text()[-2000:]}"
                assert time.monotonic() < deadline, "no second checkpoint in time"
                time.sleep(0.005)
            os.kill(child.pid, signal.SIGKILL)
        finally:
            if child.poll() is None:
                child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL

    # what the kill left: a run that is not a result, at least one complete checkpoint
    assert RunDir(out).state()["status"] == "running"
    with pytest.raises(TellkitError, match="is running"):
        RunDir(out).require_complete()
    complete = [p for p in (out / "checkpoints").iterdir() if checkpoint_complete(p)]
    assert complete, "the first checkpoint should be complete before the second one starts"
    last_good = max(int(p.name.rsplit("-", 1)[1]) for p in complete)
    # and, deterministically, the debris of a kill during a save: a checkpoint with a torn trainer_state.json
    torn = out / "checkpoints" / f"checkpoint-{last_good + SAVE}"
    if not torn.exists():
        shutil.copytree(out / "checkpoints" / f"checkpoint-{last_good}", torn)
        (torn / "trainer_state.json").write_text('{"global_step": ')

    # 3. run the same command again: it resumes from the last complete checkpoint
    assert main(["run", *args, f"output.dir={out}"]) == 0
    state = RunDir(out).require_complete()
    assert state["resumed"] is True
    assert state["train"]["resumed_from"].endswith(f"checkpoint-{last_good}")
    assert state["train"]["optimizer_steps"] == STEPS

    # 4. same data order, same losses, same adapter
    assert (ref / "mixture.jsonl").read_bytes() == (out / "mixture.jsonl").read_bytes()
    lr, lo = (json.loads((d / "loss_log.json").read_text()) for d in (ref, out))
    assert [r["step"] for r in lo] == list(range(1, STEPS + 1))  # every step once, none lost or doubled
    assert max(abs(a["loss"] - b["loss"]) for a, b in zip(lr, lo, strict=True)) <= TOLERANCE
    wr, wo = (load_file(d / "adapter" / "adapter_model.safetensors") for d in (ref, out))
    assert wr.keys() == wo.keys()
    diff = max((wr[k] - wo[k]).abs().max().item() for k in wr)
    assert diff <= TOLERANCE, f"resumed adapter differs by {diff:g}"
    assert any(torch.count_nonzero(w) for k, w in wo.items() if "lora_B" in k)  # it did train
