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
import threading
import time

import pytest
import torch
from safetensors.torch import load_file

from tellkit.cli import main
from tellkit.errors import TellkitError
from tellkit.runs.rundir import RunDir, checkpoint_complete

TOLERANCE = 1e-6
STEPS, SAVE = 10, 2


@pytest.fixture
def one_thread(monkeypatch):
    """The tiny model trains fastest on one thread per process (results are bit-identical either way)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # for the child process
    yield
    torch.set_num_threads(before)


def test_kill_9_then_run_again_resumes_to_the_same_adapter(config_file, tmp_path, one_thread):
    args = [str(config_file), "task.test_path=null", f"train.max_steps={STEPS}", f"train.save_steps={SAVE}",
            "train.batch_size=2"]
    base = config_file.parent
    ref, out = base / "ref", base / "out"

    # 1. a child `tellkit run`, killed with SIGKILL as soon as its second checkpoint folder appears ...
    err = tmp_path / "killed.stderr"
    second = out / "checkpoints" / f"checkpoint-{2 * SAVE}"
    with open(err, "wb") as stderr:
        child = subprocess.Popen([sys.executable, "-m", "tellkit.cli", "run", *args, f"output.dir={out}"],
                                 stdout=subprocess.DEVNULL, stderr=stderr)
    killed = threading.Event()

    def kill_at_second_checkpoint():
        deadline = time.monotonic() + 240
        while child.poll() is None and time.monotonic() < deadline:
            if second.exists():
                os.kill(child.pid, signal.SIGKILL)
                killed.set()
                return
            time.sleep(0.002)

    watcher = threading.Thread(target=kill_at_second_checkpoint, daemon=True)
    watcher.start()
    try:
        # 2. ... while the uninterrupted reference runs here (same machine, config and seed)
        assert main(["run", *args, f"output.dir={ref}"]) == 0
        watcher.join(timeout=240)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
    assert killed.is_set() and child.returncode == -signal.SIGKILL, err.read_text()[-2000:]

    # what the kill left: a run that is not a result, at least one complete checkpoint
    assert RunDir(out).state()["status"] == "interrupted"  # its owner process is gone
    with pytest.raises(TellkitError, match="is interrupted"):
        RunDir(out).require_complete()
    complete = [p for p in (out / "checkpoints").iterdir() if checkpoint_complete(p)]
    assert complete, "the first checkpoint should be complete before the second one starts"
    last_good = max(int(p.name.rsplit("-", 1)[1]) for p in complete)
    # and, deterministically, the debris of a kill during a save: a checkpoint with a torn trainer_state.json
    torn = out / "checkpoints" / f"checkpoint-{last_good + SAVE}"
    print(f"after the kill: {sorted(p.name for p in (out / 'checkpoints').iterdir())}, last complete: {last_good}")
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
