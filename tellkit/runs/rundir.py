"""A run folder and its state: running / complete / failed, with everything needed to reproduce it.

`run.json` is rewritten atomically at each transition, so a folder whose
state is not "complete" is never mistaken for a finished run. It also names the
process that owns a running run (pid, host, start time): a run whose owner is
gone (an out-of-memory kill leaves no other trace) reads as "interrupted", and
a run whose owner is alive is never claimed by a second process.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import socket
import sys
import time
from importlib import metadata
from pathlib import Path

import psutil

from .. import allocator
from ..config import Config, dump_config
from ..errors import TellkitError
from ..io import write_json_atomic, write_text_atomic

TRAINING_SECTIONS = ("model", "task", "general", "anchor", "mix", "lora", "train")
# how the steps are computed or watched, not what they compute: a run may resume with these changed
NOT_TRAINING = {"train": {"gradient_checkpointing", "auto_fit", "memory_budget_gb", "report_to"}}
# With a dev split, eval settings change the adapter: the dev rows are held out of training, and the
# checkpoint kept is the one the dev selection (tellkit/train/select.py) ranks best.
# By loss, only the split and the rule matter; by a metric, every eval key except these (test-split and
# speed settings; the dev generation is always greedy, so sampling settings do not apply either).
LOSS_SELECTION = {"dev_fraction", "select_by"}
NOT_METRIC_SELECTION = {"metrics", "max_new_tokens", "limit", "batch_size", "max_batch", "backend",
                        "do_sample", "temperature"}
CHECKPOINTS = "checkpoints"  # HF Trainer output_dir inside a run folder: checkpoints/checkpoint-N
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0], "platform": platform.platform(), "malloc": allocator.active()}
    for pkg in ("tellkit", "torch", "transformers", "peft", "datasets", "accelerate", "numpy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def training_hash(cfg: Config) -> str:
    """Identity of what gets trained (eval/report settings may change without a retrain, except the dev
    selection's: they choose the checkpoint that becomes the adapter)."""
    dumped = cfg.model_dump(mode="json", include=set(TRAINING_SECTIONS), exclude=NOT_TRAINING)
    if cfg.eval.dev_fraction > 0:  # only then: runs without a dev split keep the hashes they had
        dumped["eval"] = (cfg.eval.model_dump(mode="json", include=LOSS_SELECTION) if cfg.eval.select_by == "loss"
                          else cfg.eval.model_dump(mode="json", exclude=NOT_METRIC_SELECTION))
    return hashlib.sha256(repr(sorted(dumped.items())).encode()).hexdigest()[:16]


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.state_file = self.path / "run.json"

    def state(self) -> dict | None:
        """The run record; a "running" run whose owner process is gone reads as "interrupted"."""
        if not self.state_file.exists():
            return None
        try:
            state = json.loads(self.state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise TellkitError(f"{self.state_file}: unreadable run record ({e}); "
                               "pass --overwrite to start this run again, or use another output.dir") from None
        if state.get("status") == "running" and owner_alive(state.get("owner")) is False:
            o = state["owner"]
            state = {**state, "status": "interrupted", "reason": (
                f"the process that ran it (pid {o['pid']} on {o['host']}) is gone: killed (an out-of-memory "
                "kill leaves no error message) or crashed; rerun the same command to resume it from its last "
                f"checkpoint, e.g. `tellkit run {self.path / 'config.yaml'}` (or `tellkit train ... --resume`)")}
        return state

    def is_complete(self, cfg: Config | None = None) -> bool:
        """Finished; given `cfg`, also trained from it (its eval settings may differ: those re-evaluate)."""
        state = self.state() or {}
        return state.get("status") == "complete" and (cfg is None or state.get("training_hash") == training_hash(cfg))

    def check(self, cfg: Config, *, overwrite: bool = False) -> dict | None:
        """Can `cfg` use this folder? Raises if not; returns the state of the run it holds (None: fresh).

        Writes nothing, so `tellkit validate` can ask before any work is done."""
        if self.path.exists() and not self.path.is_dir():
            raise TellkitError(f"output.dir {self.path} is a file; point output.dir at a folder")
        old = self.state()
        if old is not None and old.get("status") == "running" and owner_alive(old.get("owner")) \
                and old["owner"]["pid"] != os.getpid():
            raise TellkitError(f"output.dir {self.path} is being trained right now by process {old['owner']['pid']} "
                               "on this machine; wait for it to finish (or stop it), or choose another output.dir")
        if overwrite:
            return None
        if old is not None:
            if old.get("training_hash") != training_hash(cfg):
                if old.get("status") == "failed" and not self.has_results():
                    return None  # it failed before training wrote anything: nothing to lose, start afresh
                raise TellkitError(f"output.dir {self.path} holds another run (different config); "
                                   "choose another output.dir or pass --overwrite")
        elif self.path.exists() and any(self.path.iterdir()):
            raise TellkitError(f"output.dir {self.path} exists and is not a tellkit run; "
                               "choose an empty folder or pass --overwrite")
        return old

    def has_results(self) -> bool:
        """Whether training wrote anything here (a checkpoint, the loss log or the adapter)."""
        ckpts = self.path / CHECKPOINTS
        return ((self.path / "adapter").exists() or (self.path / "loss_log.json").exists()
                or (ckpts.is_dir() and any(ckpts.iterdir())))

    def begin(self, cfg: Config, *, overwrite: bool = False, resume: bool = False) -> bool:
        """Claim the folder for this config; returns True when training resumes from a checkpoint.

        resume=True (`--resume`) insists on an interrupted run to continue."""
        if overwrite and resume:
            raise TellkitError("--overwrite starts the run again and --resume continues it; pass only one")
        old = self.check(cfg, overwrite=overwrite)
        if old is not None and old.get("status") == "complete":
            raise TellkitError(f"output.dir {self.path} already holds this finished run; "
                               "pass --overwrite to train again or use another output.dir")
        if resume and old is None:
            raise TellkitError(f"--resume: output.dir {self.path} holds no interrupted run of this config; "
                               "drop --resume to start one")
        if old is None and self.state_file.exists():  # --overwrite, or a failed run that trained nothing;
            shutil.rmtree(self.path)                  # only ever delete a tellkit run folder
        self.path.mkdir(parents=True, exist_ok=True)
        # resuming: drop checkpoints a kill left half-written, so training continues from the last good one
        resumable = old is not None and last_checkpoint(self.path / CHECKPOINTS, prune=True) is not None
        write_text_atomic(self.path / "config.yaml", dump_config(cfg))
        self.update(status="running", training_hash=training_hash(cfg), versions=versions(),
                    started=time.strftime("%Y-%m-%dT%H:%M:%S"), reason=None, owner=this_process())
        return resumable

    def update(self, **fields) -> dict:
        state = {**(self.state() or {}), **fields}
        write_json_atomic(self.state_file, state)
        return state

    def complete(self, **fields) -> dict:
        return self.update(status="complete", finished=time.strftime("%Y-%m-%dT%H:%M:%S"), **fields)

    def fail(self, reason: str) -> dict:
        return self.update(status="failed", reason=reason)

    def require_complete(self) -> dict:
        state = self.state()
        if state is None:
            raise TellkitError(f"{self.path} is not a tellkit run folder (no run.json)")
        if state.get("status") != "complete":
            status = state.get("status")
            if status == "running":
                status = ("running (or was killed)" if owner_alive(state.get("owner")) is None
                          else f"running (process {state['owner']['pid']})")
            how = "" if status == "interrupted" else "; finish it first (tellkit run CONFIG resumes it)"
            raise TellkitError(f"run {self.path} is {status}"
                               f"{': ' + state['reason'] if state.get('reason') else ''}{how}")
        return state


def this_process() -> dict:
    """Who owns a run: pid and host, and the process's start time, so a recycled pid is not mistaken
    for the owner."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "since": psutil.Process().create_time()}


def owner_alive(owner: dict | None) -> bool | None:
    """Whether a run's owner process still runs: True / False, or None when this machine cannot tell
    (no owner recorded, or another host)."""
    if not owner or owner.get("host") != socket.gethostname():
        return None
    try:
        proc = psutil.Process(int(owner["pid"]))
        alive = proc.status() != psutil.STATUS_ZOMBIE  # killed, not yet reaped by its parent
        return alive and abs(proc.create_time() - float(owner.get("since", proc.create_time()))) < 1.0
    except psutil.AccessDenied:
        return None
    except (psutil.NoSuchProcess, KeyError, ValueError, TypeError):
        return False


def checkpoint_complete(folder: str | Path) -> bool:
    """True when an HF Trainer checkpoint was fully written.

    The Trainer writes the weights, optimizer, scheduler and RNG state first and
    trainer_state.json last, none of them atomically: a checkpoint killed
    mid-write has no trainer_state.json, or a torn one. (Only the state file is
    inspected, so the check holds for every weight/optimizer layout.)
    """
    folder = Path(folder)
    m = _CHECKPOINT.match(folder.name)
    try:
        state = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(m) and isinstance(state, dict) and state.get("global_step") == int(m.group(1))


def last_checkpoint(checkpoints: str | Path, *, prune: bool = False) -> str | None:
    """The newest complete checkpoint-N under `checkpoints`, or None.

    With prune=True, incomplete checkpoint folders (debris of a kill during a
    save) are deleted so neither the Trainer's own resume logic nor its
    checkpoint rotation can pick them up.
    """
    root = Path(checkpoints)
    if not root.is_dir():
        return None
    found = sorted(((int(m.group(1)), p) for p in root.iterdir()
                    if p.is_dir() and (m := _CHECKPOINT.match(p.name))), key=lambda t: t[0])
    best = None
    for _, folder in found:
        if checkpoint_complete(folder):
            best = folder
        elif prune:
            shutil.rmtree(folder, ignore_errors=True)
    return str(best) if best is not None else None
