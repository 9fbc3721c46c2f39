"""A run folder and its state: running / complete / failed, with everything needed to reproduce it.

`run.json` is rewritten atomically at each transition, so a folder whose
state is not "complete" is never mistaken for a finished run. It also names the
process that owns a running run (pid, host, start time): a run whose owner is
gone (an out-of-memory kill leaves no other trace) reads as "interrupted", and
a run whose owner is alive is never claimed by a second process.

Ownership (tellkit/owned.py): run.json carries a marker only tellkit writes; a folder that is not
provably a tellkit run is never claimed, and starting a run again removes only what tellkit wrote.
While a process trains (or `tellkit mix` writes) into a folder it holds the folder's lock.
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
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import psutil

from .. import allocator, hardware, owned
from ..config import Config, dump_config
from ..errors import TellkitError
from ..io import check_writable, write_json_atomic, write_text_atomic

TRAINING_SECTIONS = ("model", "task", "general", "anchor", "mix", "lora", "train")
# how the steps are computed or watched, not what they compute: a run may resume with these changed
NOT_TRAINING = {"train": {"gradient_checkpointing", "auto_fit", "memory_budget_gb", "report_to"}}
# With a dev split, eval settings change the adapter: the dev rows are held out of training, and the
# checkpoint kept is the one the dev selection (tellkit/train/select.py) ranks best.
# By loss, only the split and the rule matter; by a metric, every eval key except these (test-split and
# speed settings; the dev generation is always greedy, so sampling settings do not apply either).
LOSS_SELECTION = {"dev_fraction", "select_by"}
NOT_METRIC_SELECTION = {"metrics", "max_new_tokens", "limit", "batch_size", "max_batch", "backend",
                        "do_sample", "temperature",
                        "general_tasks", "general_limit", "general_score"}  # general ability: measured after training
CHECKPOINTS = "checkpoints"  # HF Trainer output_dir inside a run folder: checkpoints/checkpoint-N
MIXTURE_FILES = ("mixture.jsonl", "mixture.json")
# a folder in these states holds nothing training wrote (unless has_results says so): a new config may start afresh
RESTARTABLE = ("failed", "mixed")
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0], "platform": platform.platform(), "malloc": allocator.active(),
           "cpu": hardware.cpu(), "gpu": hardware.gpu()}
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
            # run.json is always written atomically: an unreadable one is not tellkit's to replace
            raise TellkitError(f"{self.state_file}: unreadable run record ({e}); tellkit cannot tell whose folder "
                               "this is: move that run.json away or use another output.dir") from None
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

        Writes nothing, so `tellkit validate` can ask before any work is done. A folder that is not
        provably a tellkit run (owned.py) is refused, --overwrite or not."""
        if self.path.exists() and not self.path.is_dir():
            raise TellkitError(f"output.dir {self.path} is a file; point output.dir at a folder")
        old = self.state()
        if old is not None:
            owned.require_run_folder(self.path, old, claiming=False)
        if old is not None and old.get("status") == "running" and owner_alive(old.get("owner")) \
                and old["owner"]["pid"] != os.getpid():
            raise TellkitError(f"output.dir {self.path} is being trained right now by process {old['owner']['pid']} "
                               "on this machine; wait for it to finish (or stop it), or choose another output.dir")
        if old is None and self.path.exists() and any(self.path.iterdir()):
            raise TellkitError(f"output.dir {self.path} exists, is not empty and is not a tellkit run (no run.json); "
                               "tellkit does not write into it, --overwrite or not: choose a new or empty folder")
        check_writable(self.state_file)  # permission denied, read-only: an OSError now, not after tokenizing
        if overwrite:
            return self._fresh(old)
        if old is not None:
            if old.get("training_hash") != training_hash(cfg):
                if old.get("status") in RESTARTABLE and not self.has_results():
                    return self._fresh(old)  # failed (or only mixed) before training wrote anything
                raise TellkitError(f"output.dir {self.path} holds another run (different config); "
                                   "choose another output.dir or pass --overwrite")
        return old

    def _fresh(self, old: dict | None) -> None:
        """None: the run starts afresh, removing what tellkit wrote here. A folder from an older tellkit
        (no marker) qualifies only when it holds nothing but names tellkit writes."""
        if old is not None:
            owned.require_run_folder(self.path, old, claiming=True)
        return None

    def has_results(self) -> bool:
        """Whether training wrote anything here (a checkpoint, the loss log or the adapter)."""
        ckpts = self.path / CHECKPOINTS
        return ((self.path / "adapter").exists() or (self.path / "loss_log.json").exists()
                or (ckpts.is_dir() and any(ckpts.iterdir())))

    def begin(self, cfg: Config, *, overwrite: bool = False, resume: bool = False) -> bool:
        """Claim the folder for this config; returns True when training resumes from a checkpoint.

        resume=True (`--resume`) insists on an interrupted run to continue. Starting again (--overwrite,
        or a failed run that trained nothing) removes only what tellkit wrote into the folder."""
        if overwrite and resume:
            raise TellkitError("--overwrite starts the run again and --resume continues it; pass only one")
        self.check(cfg, overwrite=overwrite)  # fail before creating anything
        self.path.mkdir(parents=True, exist_ok=True)
        self._locked = owned.acquire(self.path)  # held until complete() or fail(), or the process ends
        try:
            return self._claim(cfg, overwrite, resume)
        except BaseException:
            self._unlock()
            raise

    def _claim(self, cfg: Config, overwrite: bool, resume: bool) -> bool:
        old = self.check(cfg, overwrite=overwrite)  # again, under the lock: another process may have finished
        if old is not None and old.get("status") == "complete":
            raise TellkitError(f"output.dir {self.path} already holds this finished run; "
                               "pass --overwrite to train again or use another output.dir")
        if resume and old is None:
            raise TellkitError(f"--resume: output.dir {self.path} holds no interrupted run of this config; "
                               "drop --resume to start one")
        if old is None and self.state_file.exists():  # --overwrite, or a failed run that trained nothing;
            # check() proved the folder is a tellkit run: remove what tellkit wrote, the user's files stay.
            # run.json stays until the new record replaces it, so the folder never looks like nobody's.
            owned.clear_run_folder(self.path, keep=("run.json",))
        owned.remove_stale_temps(self.path, MIXTURE_FILES)  # a killed mix's temp files (we hold the lock)
        # resuming: drop checkpoints a kill left half-written, so training continues from the last good one
        resumable = old is not None and last_checkpoint(self.path / CHECKPOINTS, prune=True) is not None
        write_text_atomic(self.path / "config.yaml", dump_config(cfg))
        self.update(fresh=old is None, status="running", training_hash=training_hash(cfg), versions=versions(),
                    started=time.strftime("%Y-%m-%dT%H:%M:%S"), reason=None, owner=this_process())
        return resumable

    @contextmanager
    def mixing(self, cfg: Config) -> Iterator[None]:
        """Hold the folder while `tellkit mix` builds and writes cfg's mixture into it.

        The same rules as a run (a folder that is not tellkit's, another config's run or a live run is
        refused), under the same lock, so two mixes (or a mix and a train) never write it at once. A
        fresh folder gets a run.json with status "mixed" (which a later `tellkit train` of any config
        may start afresh); if the block fails, that folder is left as it was found."""
        self.check(cfg)  # before creating anything
        created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        with owned.lock(self.path):
            old = self.check(cfg)  # again, under the lock
            had_record = self.state_file.exists()
            if old is None:
                if had_record:  # a failed or mixed run of another config that trained nothing
                    owned.clear_run_folder(self.path, keep=("run.json",))
                self.update(fresh=True, status="mixed", training_hash=training_hash(cfg), versions=versions())
            owned.remove_stale_temps(self.path, MIXTURE_FILES)
            try:
                yield
            except BaseException:
                if old is None:  # nothing of a failed mix stays behind (a record that was there stays)
                    owned.clear_run_folder(self.path, keep=("run.json",) if had_record else ())
                    if created:
                        self.path.rmdir()
                raise

    def update(self, fresh: bool = False, **fields) -> dict:
        """Write run.json: `fields` over the current record (fresh=True: over nothing), with the marker."""
        state = {**({} if fresh else self.state() or {}), owned.MARKER_KEY: owned.RUN_MARKER, **fields}
        write_json_atomic(self.state_file, state)
        return state

    def complete(self, **fields) -> dict:
        try:
            return self.update(status="complete", finished=time.strftime("%Y-%m-%dT%H:%M:%S"), **fields)
        finally:
            self._unlock()

    def fail(self, reason: str) -> dict:
        try:
            return self.update(status="failed", reason=reason)
        finally:
            self._unlock()

    def _unlock(self) -> None:
        if getattr(self, "_locked", False):
            owned.release(self.path)
            self._locked = False

    def require_complete(self) -> dict:
        state = self.state()
        if state is None:
            raise TellkitError(f"{self.path} is not a tellkit run folder (no run.json)")
        owned.require_run_folder(self.path, state, claiming=False)
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
