"""scripts/restore_cells.py: an archive's cells go back into a sweep folder as tellkit run folders."""

import json
from pathlib import Path

from tellkit import owned
from tellkit.runs.rundir import RunDir
from tests.scripts import load_script as _load


def _sweep(folder: Path) -> None:
    """A finished sweep folder as `tellkit sweep` leaves it: one trained cell (adapter and all) and base."""
    cell = folder / "cells" / "tell-t10000-r30-s1"
    (cell / "eval").mkdir(parents=True)
    (cell / "adapter").mkdir()
    state = {"status": "complete", "training_hash": "0123456789abcdef", "versions": {"torch": "2.13.0"},
             "mixture": {"fingerprint": "f00d", "data": {"task": "/machine/path"}}, "train": {"train_tokens": 5},
             **{owned.MARKER_KEY: owned.RUN_MARKER}}
    (cell / "run.json").write_text(json.dumps(state))
    (cell / "eval" / "scores.json").write_text(json.dumps({"metrics": {"json": {"n": 2, "items": {"x": [1, 0]}}}}))
    (folder / "base").mkdir()
    (folder / "base" / "scores.json").write_text(json.dumps({"metrics": {"json": {"n": 2, "items": {"x": [0, 0]}}}}))
    (folder / "plan.json").write_text(json.dumps({"kind": "sweep", "cells": []}))


def test_archive_then_restore_gives_back_a_complete_tellkit_run(tmp_path):
    _sweep(tmp_path / "old")
    assert _load("archive_cells").main(str(tmp_path / "old"), str(tmp_path / "archive")) == 0
    restored, skipped = _load("restore_cells").restore(tmp_path / "archive", tmp_path / "new")
    assert (restored, skipped) == (2, 0)
    cell = tmp_path / "new" / "cells" / "tell-t10000-r30-s1"
    old = tmp_path / "old" / "cells" / "tell-t10000-r30-s1"
    assert json.loads((cell / "eval" / "scores.json").read_text()) == json.loads((old / "eval" / "scores.json").read_text())
    state = json.loads((cell / "run.json").read_text())
    assert state["training_hash"] == "0123456789abcdef" and "data" not in state["mixture"]
    owned.require_run_folder(cell, state, claiming=False)  # tellkit takes it for its own run folder
    run = RunDir(cell)
    assert run.is_complete() and not (cell / "adapter").exists()
    assert json.loads((tmp_path / "new" / "base" / "scores.json").read_text())["metrics"]["json"]["items"]["x"] == [0, 0]
    assert json.loads((tmp_path / "new" / "plan.json").read_text())["kind"] == "sweep"


def test_restore_never_writes_into_a_folder_that_exists(tmp_path):
    _sweep(tmp_path / "old")
    _load("archive_cells").main(str(tmp_path / "old"), str(tmp_path / "archive"))
    mine = tmp_path / "new" / "cells" / "tell-t10000-r30-s1"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("mine")
    (tmp_path / "new" / "plan.json").write_text("my plan")
    restored, skipped = _load("restore_cells").restore(tmp_path / "archive", tmp_path / "new")
    assert (restored, skipped) == (1, 1)  # base restored; the cell left alone
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    assert (tmp_path / "new" / "plan.json").read_text() == "my plan"
