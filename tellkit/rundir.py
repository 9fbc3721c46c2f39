"""A run folder and its state: running / complete / failed, with everything needed to reproduce it.

`run.json` is rewritten atomically at each transition, so a folder whose
state is not "complete" is never mistaken for a finished run.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import shutil
import sys
import time
from importlib import metadata
from pathlib import Path

from .config import Config, dump_config
from .errors import TellkitError
from .io import write_json_atomic, write_text_atomic

TRAINING_SECTIONS = ("model", "task", "general", "anchor", "mix", "lora", "train")
CHECKPOINTS = "checkpoints"  # HF Trainer output_dir inside a run folder: checkpoints/checkpoint-N
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in ("tellkit", "torch", "transformers", "peft", "datasets", "accelerate", "numpy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def training_hash(cfg: Config) -> str:
    """Identity of what gets trained (eval/report settings may change without a retrain)."""
    dumped = cfg.model_dump(mode="json", include=set(TRAINING_SECTIONS))
    return hashlib.sha256(repr(sorted(dumped.items())).encode()).hexdigest()[:16]


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.state_file = self.path / "run.json"

    def state(self) -> dict | None:
        if not self.state_file.exists():
            return None
        try:
            return json.loads(self.state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise TellkitError(f"{self.state_file}: unreadable run record ({e}); "
                               "pass --overwrite to start this run again, or use another output.dir") from None

    def is_complete(self) -> bool:
        return (self.state() or {}).get("status") == "complete"

    def check(self, cfg: Config, *, overwrite: bool = False) -> dict | None:
        """Can `cfg` use this folder? Raises if not; returns the state of the run it holds (None: fresh).

        Writes nothing, so `tellkit validate` can ask before any work is done."""
        if self.path.exists() and not self.path.is_dir():
            raise TellkitError(f"output.dir {self.path} is a file; point output.dir at a folder")
        if overwrite:
            return None
        old = self.state()
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
                    started=time.strftime("%Y-%m-%dT%H:%M:%S"), reason=None)
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
            status = "running (or was killed)" if state.get("status") == "running" else state.get("status")
            raise TellkitError(f"run {self.path} is {status}"
                               f"{': ' + state['reason'] if state.get('reason') else ''}; "
                               "finish it first (tellkit run CONFIG resumes it)")
        return state


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
