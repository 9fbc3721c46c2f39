#!/usr/bin/env python3
"""Put an archive's finished cells back into an empty sweep folder, so a campaign resumes on a fresh checkout.

    python scripts/restore_cells.py docs/results/tickets-10k examples/runs/study3/tickets

The inverse of archive_cells.py: for each line of SRC/cells.jsonl.gz writes DEST/cells/<cell>/run.json (the
archived state: status, training_hash, mixture counts, training cost; with tellkit's run-folder marker) and
DEST/cells/<cell>/eval/scores.json, DEST/base/scores.json, and the archived plan.json (the sweep's own
record, so tellkit takes DEST for the sweep it is). `tellkit sweep` then counts a restored cell as
done when its training_hash equals the one the current code and data give that cell (so a changed config or
dataset retrains it) and its scores hold every metric asked for; the report and the intervals read the same
per-item rows the original run wrote. Adapters are not archived: a restored cell cannot be evaluated again.
Writes nothing where a cell's folder already exists.
"""

from __future__ import annotations

import gzip
import json
import shutil
import sys
from pathlib import Path

from tellkit.owned import MARKER_KEY, RUN_MARKER  # the mark of a run folder tellkit wrote


def restore(src: Path, dest: Path) -> tuple[int, int]:
    restored = skipped = 0
    with gzip.open(src / "cells.jsonl.gz", "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    for row in rows:
        base = row["name"] == "base"
        where = dest / "base" if base else dest / "cells" / row["name"]
        if where.exists():
            skipped += 1
            continue
        scores = where / "scores.json" if base else where / "eval" / "scores.json"
        scores.parent.mkdir(parents=True)
        scores.write_text(json.dumps(row["scores"], indent=1), encoding="utf-8")
        if not base:
            (where / "run.json").write_text(json.dumps({**row["run"], MARKER_KEY: RUN_MARKER}, indent=1), encoding="utf-8")
        restored += 1
    if (src / "plan.json").is_file() and not (dest / "plan.json").exists():
        shutil.copy2(src / "plan.json", dest / "plan.json")
    return restored, skipped


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: restore_cells.py ARCHIVE_FOLDER SWEEP_FOLDER")
    n, skipped = restore(Path(sys.argv[1]), Path(sys.argv[2]))
    print(f"{n} cells restored into {sys.argv[2]} ({skipped} already there, left as they were)")
