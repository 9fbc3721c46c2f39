"""A run folder and its state: running / complete / failed, with everything needed to reproduce it.

`run.json` is rewritten atomically at each transition, so a folder whose
state is not "complete" is never mistaken for a finished run.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import sys
import time
from importlib import metadata
from pathlib import Path

from .config import Config, dump_config
from .errors import TellkitError
from .io import write_json_atomic, write_text_atomic

TRAINING_SECTIONS = ("model", "task", "general", "anchor", "mix", "lora", "train")


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
        return json.loads(self.state_file.read_text(encoding="utf-8"))

    def is_complete(self) -> bool:
        return (self.state() or {}).get("status") == "complete"

    def begin(self, cfg: Config, *, overwrite: bool = False) -> bool:
        """Claim the folder for this config; returns True when an interrupted run can be resumed."""
        old = self.state()
        if old is not None and overwrite:
            shutil.rmtree(self.path)
            old = None
        if old is not None:
            if old.get("training_hash") != training_hash(cfg):
                raise TellkitError(f"output.dir {self.path} holds another run (different config); "
                                   "choose another output.dir or pass --overwrite")
            if old.get("status") == "complete":
                raise TellkitError(f"output.dir {self.path} already holds this finished run; "
                                   "pass --overwrite to train again or use another output.dir")
        elif self.path.exists() and any(self.path.iterdir()) and not overwrite:
            raise TellkitError(f"output.dir {self.path} exists and is not a tellkit run; "
                               "choose an empty folder or pass --overwrite")
        self.path.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.path / "config.yaml", dump_config(cfg))
        self.update(status="running", training_hash=training_hash(cfg), versions=versions(),
                    started=time.strftime("%Y-%m-%dT%H:%M:%S"))
        return old is not None

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
            raise TellkitError(f"run {self.path} is {state.get('status')}"
                               f"{': ' + state['reason'] if state.get('reason') else ''}; "
                               "finish it first (tellkit run CONFIG resumes it)")
        return state
