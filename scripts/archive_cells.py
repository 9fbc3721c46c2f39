#!/usr/bin/env python3
"""Archive a sweep's or compare's finished cells into one gzipped JSONL under docs/results/, as they land.

    python scripts/archive_cells.py examples/runs/study2/orders docs/results/orders-ood

Writes DEST/cells.jsonl.gz: one line per finished cell (and base), holding its evaluation (scores.json:
every metric with its per-item rows, so intervals can be recomputed from the committed files alone) and
what its run.json records about the training (tokens, steps, seconds, machine, versions). Also copies the
folder's report.md, sweep.json/comparison.json, sweep.csv, plan.json and the plots its report.md shows (a partial sweep's report
comes from `tellkit report FOLDER`). Rerun after every finished seed: the archive is rewritten whole.
"""

from __future__ import annotations

import gzip
import json
import shutil
import sys
from pathlib import Path

KEEP_RUN = ("status", "training_hash", "versions", "mixture", "train", "anchor", "model_ref")
COPY = ("report.md", "sweep.json", "sweep.csv", "comparison.json", "plan.json")


def cells(folder: Path):
    found = [*folder.glob("cells/*/eval/scores.json"), *folder.glob("*/eval/scores.json"), *folder.glob("*/scores.json")]
    for scores in sorted(found):  # a sweep's cells/<cell>/eval, a compare's <method>-s<seed>/eval, base/
        run_dir = scores.parent.parent if scores.parent.name == "eval" else scores.parent
        if run_dir.is_symlink():  # a compare's best/ is one of its cells
            continue
        run = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").is_file() else {}
        kept = {k: run[k] for k in KEEP_RUN if k in run}
        if isinstance(kept.get("mixture"), dict):  # its counts and fingerprint; the data paths are the machine's
            kept["mixture"] = {k: v for k, v in kept["mixture"].items() if k != "data"}
        yield {"name": run_dir.name, "run": kept,
               "scores": json.loads(scores.read_text())}


def main(src: str, dest: str) -> int:
    folder, out = Path(src), Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    rows = list(cells(folder))
    with gzip.open(out / "cells.jsonl.gz", "wt", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, sort_keys=True) + "\n")
    for name in COPY:
        if (folder / name).is_file():
            shutil.copy2(folder / name, out / name)
    report = (folder / "report.md").read_text() if (folder / "report.md").is_file() else ""
    for png in folder.glob("*.png"):  # the plots the report shows (an older report's others stay behind)
        if f"({png.name})" in report:
            shutil.copy2(png, out / png.name)
    print(f"{len(rows)} cells -> {out / 'cells.jsonl.gz'}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: archive_cells.py SWEEP_OR_COMPARE_FOLDER DEST_FOLDER")
    raise SystemExit(main(*sys.argv[1:]))
