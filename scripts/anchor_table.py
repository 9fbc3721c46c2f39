#!/usr/bin/env python3
"""The anchor ablation of issue 28 as one table: no anchor / the handwritten anchor / the best drafted one.

    python scripts/anchor_table.py docs/results/anchor-10k

Reads the archived cells (scripts/archive_cells.py) of the two compares that scripts/run_study3.sh anchor
runs at one cell (Orders, 10^4 task tokens, ratio 30): ARCHIVE/handwritten (tell, tell-no-anchor, base)
and ARCHIVE/drafted-best (tell with the anchor `tellkit anchor draft` + `rank` put first). The variants
are separate compares, so no single report sets them side by side; this one does, each against the
handwritten anchor, paired by test item and resampled over items and seeds (metrics.pooled), and
writes ARCHIVE/ablation.md. Every number comes from the committed cells alone.
"""

from __future__ import annotations

import gzip
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tellkit.metrics import pooled  # noqa: E402
from tellkit.report.html import fmt_ci, md_table, shorten  # noqa: E402

TASK = ("json/field_exact", "json/strict")
GENERAL = ("general_ood/tellkit_pydoc/bits_per_byte", "general_ood/tellkit_wordnet/acc", "general/loss")
# (label, folder, cell name prefix): the reference first
VARIANTS = (("handwritten anchor", "handwritten", "tell-s"), ("no anchor", "handwritten", "tell-no-anchor-s"),
            ("best drafted anchor", "drafted-best", "tell-s"))


def _cells(folder: Path) -> list[dict]:
    path = folder / "cells.jsonl.gz"
    if not path.is_file():
        return []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def variants(archived: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """{label: [cell per seed, in seed order]}, the variants with at least one finished seed."""
    out = {}
    for label, folder, prefix in VARIANTS:
        rows = [r for r in archived[folder] if r["name"].startswith(prefix)
                and r["name"][len(prefix):].isdigit()]
        if rows:
            out[label] = sorted(rows, key=lambda r: int(r["name"][len(prefix):]))
    return out


def _metrics(rows: list[dict]) -> list[dict]:
    return [r["scores"]["metrics"] for r in rows]


def _diff(key: str, rows: list[dict], ref: list[dict]) -> str:
    """This variant minus the reference: the same test items, each side's seeds resampled on their own."""
    d = pooled.difference(key, _metrics(rows), _metrics(ref))
    if d["mean_diff"] is None or math.isnan(d["mean_diff"]):
        return "–"
    interval = "" if math.isnan(d["ci_low"]) else f" [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]"
    return f"{d['mean_diff']:+.3f}{interval}"


def table(archive: Path) -> list[str]:
    archived = {folder: _cells(archive / folder) for folder in {f for _, f, _ in VARIANTS}}  # each read once
    found = variants(archived)
    if "handwritten anchor" not in found:
        return [f"No handwritten-anchor cells in {archive} yet: run `bash scripts/run_study3.sh anchor` and archive it."]
    ref = found["handwritten anchor"]
    base = [r for r in archived["handwritten"] if r["name"] == "base"]
    rows = []
    for label, cells in found.items():
        anchor = cells[0]["run"].get("anchor")
        tokens = [c["run"].get("train", {}).get("train_tokens") for c in cells]
        rows.append([label, f"`{shorten(anchor, 70)}`" if anchor else "(none)", len(cells),
                     f"{sum(tokens) / len(tokens):.0f}" if None not in tokens else "–",
                     *[fmt_ci(pooled.over_seeds(k, _metrics(cells))) for k in TASK + GENERAL],
                     "–" if cells is ref else _diff(TASK[0], cells, ref)])
    if base:
        rows.append(["base (untrained)", "–", "–", "0", *[fmt_ci(pooled.over_seeds(k, _metrics(base))) for k in TASK + GENERAL],
                     "–"])
    return [md_table(["variant", "anchor", "seeds", "train tokens", *TASK, *GENERAL, f"{TASK[0]} vs handwritten"], rows), "",
            "Means over seeds with 95% intervals over test items and seeds; the last column is paired by test "
            "item (same items, seeds resampled per variant). bits per byte and loss: lower is better. Without the "
            "anchor the same examples are fewer tokens, and the general data is mix.ratio times those: fewer "
            "training tokens, never more."]


def main(archive: str) -> int:
    folder = Path(archive)
    lines = ["# The anchor at one cell: Orders, 10^4 task tokens, ratio 30", "",
             "Written by `python scripts/anchor_table.py " + archive + "` from the archived cells "
             "(`bash scripts/run_study3.sh anchor`). The anchor texts are ours; the paper's are unpublished.", "",
             *table(folder), ""]
    (folder / "ablation.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: anchor_table.py ARCHIVE_FOLDER (holding handwritten/ and drafted-best/ from archive_cells.py)")
    raise SystemExit(main(sys.argv[1]))
