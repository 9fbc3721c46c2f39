"""Shared helpers for the data build scripts in this folder.

These scripts run at *build* time only: they read the read-only source data in
``../shared/data`` (or ``--shared DIR`` / ``$TELLKIT_SHARED_DATA``) and write
the derived, committed files under ``examples/data/``. tellkit itself never
reads ``../shared`` at run time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
from pathlib import Path
from typing import Iterable

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_ROOT = REPO_ROOT / "examples" / "data"

# Records 3002..4507 of HaluEval general_data.json are the paper's released
# Halu-CoT-JSON test prompts; 1..3001 are the training pool.
HALU_POOL_MAX_ID = 3001
HALU_TEST_MIN_ID = 3002
HALU_TEST_MAX_ID = 4507


def shared_default() -> Path:
    env = os.environ.get("TELLKIT_SHARED_DATA")
    if env:
        return Path(env)
    return REPO_ROOT.parent / "shared" / "data"


def make_parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--shared",
        type=Path,
        default=shared_default(),
        help="folder holding the read-only source data (default: ../shared/data or $TELLKIT_SHARED_DATA)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=DATA_ROOT,
        help="root output folder (default: examples/data); each script writes a sub-folder",
    )
    return p


def norm_query(text: str) -> str:
    """Normalisation used for overlap checks: lowercase, collapsed whitespace."""
    return re.sub(r"\s+", " ", text).strip().lower()


def approx_tokens(text: str) -> int:
    return len(text) // 4


def row_text(row: dict) -> str:
    """The text a row contributes to training/eval, for the chars/4 estimate."""
    if "messages" in row:
        return "".join(m.get("content", "") for m in row["messages"])
    keys = ("prompt", "completion", "instruction", "input", "output", "query", "response")
    return "".join(str(row[k]) for k in keys if k in row and isinstance(row[k], str))


def write_jsonl(path: Path, rows: Iterable[dict]) -> tuple[int, int]:
    """Write rows as UTF-8 JSONL with '\\n' line ends; return (rows, approx tokens)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = tok = 0
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
            tok += approx_tokens(row_text(row))
    print(f"wrote {rel(path)}: {n} rows, ~{tok:,} tokens (chars/4), {path.stat().st_size:,} bytes")
    return n, tok


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    print(f"wrote {rel(path)}")


def copy_file(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    print(f"wrote {rel(dst)} (copy of {src.name})")


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def load_halueval(shared: Path) -> list[dict]:
    """Load HaluEval general_data.json with repaired integer IDs.

    The file is one JSON object per line, and ``ID`` equals the 1-based line
    number for every record except three in the training pool whose ``ID``
    field is corrupted in the source (line 1975: ``""``; lines 2059 and 2159:
    ``"ID"``). We use the line number as the ID for all records and assert it
    agrees with every well-formed ``ID``.
    """
    path = shared / "halueval" / "general_data.json"
    rows = []
    repaired = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            rec = json.loads(line)
            raw = rec.get("ID")
            if isinstance(raw, str) and raw.isdigit():
                assert int(raw) == lineno, f"HaluEval ID {raw!r} on line {lineno}"
            else:
                repaired.append((lineno, raw))
            rec = dict(rec)
            rec["ID"] = lineno
            rows.append(rec)
    assert len(rows) == HALU_TEST_MAX_ID, len(rows)
    assert len(repaired) == 3 and all(n <= HALU_POOL_MAX_ID for n, _ in repaired), repaired
    return rows
