"""What tellkit may delete or overwrite: only what it can prove it wrote itself.

A user may point output.dir (or `mix --out`, `report`, a compare's `best/`) at any folder, so every
write that replaces or removes something first asks this module whose it is:

* a **run folder** is tellkit's when its run.json carries the marker ``"tellkit": {"run_format": 1}``,
  which only `RunDir` writes. Run folders written before the marker existed ("legacy") are accepted
  when their run.json has the shape tellkit always wrote (status, a 16-hex training_hash, versions)
  *and* every entry beside it is a name tellkit writes: a folder holding anything else is refused,
  since nothing proves the extra entries (or the run.json) are tellkit's.
* Even in a folder that is provably tellkit's, a restart (``--overwrite``, a failed run started
  afresh) removes only the entries named in RUN_ENTRIES (and tellkit's temp debris): the user's own
  notes or code inside a run folder survive.
* A **compare or sweep folder** is tellkit's when its plan.json / comparison.json has tellkit's shape.

Anything else that is not empty is refused with a TellkitError naming the folder: tellkit never
guesses. `lock` keeps two tellkit processes (two `mix`, or a `mix` and a `train`) from writing one
run folder at once.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import TellkitError

MARKER_KEY = "tellkit"
RUN_MARKER = {"run_format": 1}

# Every top-level entry tellkit writes into a run folder (train, run, mix, eval, report, trackers).
RUN_ENTRIES = frozenset({
    "run.json", "config.yaml", "mixture.jsonl", "mixture.json", "adapter", "checkpoints", "eval",
    "loss_log.json", "report.md", "report.html", "loss.png", "tensorboard",
})
# Also tellkit's, at their default places, but never removed by a restart: they do not come from the
# training run, and anchors/anchors.txt is meant to be edited by hand (`tellkit anchor draft`).
KEPT_ENTRIES = frozenset({"probe", "anchors"})
# Debris of an interrupted write: io.atomic_path's ".NAME.XXXXXXXX.tmp[.suffix]" and the trainer's
# adapter temp folders ("adapter.tmp" before the swap existed, ".adapter.new" and ".adapter.old[-X]" since).
_TEMP = re.compile(r"^\.(?P<name>.+?)\.[A-Za-z0-9_]{6,}\.tmp(\.[A-Za-z0-9]+)?$")
_ADAPTER_TEMP = re.compile(r"^(adapter\.tmp|\.adapter\.(new|old)(-[A-Za-z0-9_]+)?)$")
_HASH = re.compile(r"^[0-9a-f]{16}$")


def temp_of(name: str) -> str | None:
    """The entry a tellkit temp file or folder stands in for ("mixture.jsonl", "adapter"), else None."""
    if _ADAPTER_TEMP.match(name):
        return "adapter"
    m = _TEMP.match(name)
    return m.group("name") if m else None


def is_run_entry(name: str) -> bool:
    return name in RUN_ENTRIES or temp_of(name) in RUN_ENTRIES


def run_record_kind(state: dict | None) -> str | None:
    """"marked" (written by this tellkit), "legacy" (tellkit's shape, from before the marker) or None."""
    if not isinstance(state, dict):
        return None
    if state.get(MARKER_KEY) == RUN_MARKER:
        return "marked"
    if (state.get("status") in ("running", "complete", "failed") and isinstance(state.get("versions"), dict)
            and _HASH.match(str(state.get("training_hash", "")))):
        return "legacy"
    return None


def foreign_entries(folder: Path) -> list[str]:
    """The entries of `folder` that are not names tellkit writes into a run folder, sorted."""
    return sorted(p.name for p in folder.iterdir() if not is_run_entry(p.name) and p.name not in KEPT_ENTRIES)


def require_run_folder(folder: Path, state: dict | None, *, claiming: bool) -> None:
    """Raise unless `folder`'s run.json (`state`, already parsed) proves the folder is a tellkit run.

    claiming=True (a run is about to be (re)started or mixed into it): a legacy folder must also hold
    nothing but names tellkit writes, because a restart removes those names."""
    kind = run_record_kind(state)
    if kind is None:
        raise TellkitError(f"{folder} holds a run.json that tellkit did not write (no \"tellkit\" marker); "
                           "tellkit leaves that folder alone: choose another output.dir (a new or empty folder)")
    if kind == "legacy" and claiming:
        extra = foreign_entries(folder)
        if extra:
            raise TellkitError(f"{folder} is a run folder from an older tellkit and also holds {_names(extra)}, "
                               "which tellkit did not write; move those out (or choose another output.dir) "
                               "so that restarting the run cannot touch them")


def clear_run_folder(folder: Path, keep: tuple[str, ...] = ()) -> list[str]:
    """Remove what tellkit wrote into a run folder (RUN_ENTRIES and its temp debris) except `keep`;
    leave everything else.

    Only call this for a folder require_run_folder accepted. Returns the removed names."""
    removed = []
    for entry in sorted(folder.iterdir()):
        if not is_run_entry(entry.name) or entry.name in keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
        removed.append(entry.name)
    return removed


def remove_stale_temps(folder: Path, names: tuple[str, ...]) -> list[str]:
    """Delete temp files of `names` (e.g. a killed mix's 100 MB ".mixture.jsonl.XXXX.tmp.jsonl").

    Only under `lock`: every writer of these names holds the folder's lock while writing, so a temp
    file found by the lock's holder belongs to a writer that is gone."""
    removed = []
    for entry in folder.iterdir() if folder.is_dir() else ():
        if temp_of(entry.name) in names and entry.is_file():
            entry.unlink(missing_ok=True)
            removed.append(entry.name)
    return removed


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


# ---------------------------------------------------------------- compare / sweep folders


def plan_record_kind(folder: Path) -> str | None:
    """"sweep" or "compare" when `folder` holds a plan.json or comparison.json of tellkit's shape."""
    plan = _json(folder / "plan.json")
    if isinstance(plan, dict) and plan.get("kind") in ("sweep", "compare") and isinstance(plan.get("cells"), list) \
            and isinstance(plan.get("identity"), str):
        return plan["kind"]
    comparison = _json(folder / "comparison.json")
    if isinstance(comparison, dict) and isinstance(comparison.get("cells"), list) and "summary" in comparison \
            and "methods" in comparison:
        return "compare"
    return None


def require_plan_folder(folder: Path, kind: str) -> None:
    """A compare/sweep may write into `folder`: it is new, empty, or already a tellkit compare/sweep."""
    if folder.exists() and not folder.is_dir():
        raise TellkitError(f"output.dir {folder} is a file; point output.dir at a folder")
    if not folder.exists() or not any(folder.iterdir()) or plan_record_kind(folder) is not None:
        return
    raise TellkitError(f"output.dir {folder} exists and is not a tellkit {kind} folder (no plan.json written by "
                       "tellkit); choose a new or empty folder, so nothing of yours in it can be overwritten")


def _json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------- the folder lock

_held: dict[str, int] = {}  # resolved folder -> open fd holding its flock (one per folder per process)


@contextmanager
def lock(folder: Path) -> Iterator[None]:
    """Hold `folder`'s lock for the block (see acquire)."""
    took = acquire(folder)
    try:
        yield
    finally:
        if took:
            release(folder)


def acquire(folder: Path) -> bool:
    """Take an exclusive flock on the folder itself (no lock file is left behind); the OS drops it when
    the process dies, so a kill never leaves a stale lock. Returns False when this process holds it
    already. Raises a TellkitError when another process does."""
    key = str(Path(folder).resolve())
    if key in _held:
        return False
    try:
        import fcntl
    except ImportError:  # no flock (Windows): the run.json owner check is the only guard there
        return False
    fd = os.open(key, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise TellkitError(f"another tellkit process is writing {folder} right now (mix or train); wait for it "
                           "to finish, or use another output folder") from None
    _held[key] = fd
    return True


def release(folder: Path) -> None:
    fd = _held.pop(str(Path(folder).resolve()), None)
    if fd is not None:
        os.close(fd)  # closing the descriptor drops the flock
