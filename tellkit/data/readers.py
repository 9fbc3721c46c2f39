"""Stream raw records from files, shard folders, saved HF datasets or the hub.

Readers yield `(where, record)` so that every later error can name the file
and line ("data/task.jsonl:17"). Files are streamed line by line / batch by
batch so a general corpus larger than memory never has to fit in it.
"""

from __future__ import annotations

import csv
import glob
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import DataError

SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")
Record = tuple[str, dict[str, Any]]


def read_records(source: str) -> Iterator[Record]:
    """Records from a file, a glob of shards, a folder of shards, a saved HF dataset, or a hub id."""
    n = 0
    for record in _records(source):
        n += 1
        yield record
    if n == 0:
        raise DataError(f"{source}: no records, the data is empty; add examples or point to the right file")


def _records(source: str) -> Iterator[Record]:
    path = Path(source)
    if any(ch in source for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(source))
        if not files:
            raise DataError(f"no files match '{source}'")
        for f in files:
            yield from _read_file(f)
    elif path.is_dir():
        yield from _read_folder(path)
    elif path.is_file():
        yield from _read_file(path)
    elif _is_hub_id(source) and not _offline():
        yield from _read_hub(source)
    else:
        raise DataError(f"data file not found: {source}: no such file or folder (check the path; relative paths "
                        "are relative to the config)")


def _read_folder(path: Path) -> Iterator[Record]:
    if (path / "dataset_info.json").exists() or (path / "state.json").exists() or (path / "dataset_dict.json").exists():
        from datasets import load_from_disk

        ds = load_from_disk(str(path))
        if hasattr(ds, "keys"):  # a DatasetDict: take the train split
            ds = ds["train"] if "train" in ds else ds[next(iter(ds.keys()))]
        for i, row in enumerate(ds):
            yield f"{path}[{i}]", row
        return
    shards = sorted(p for p in path.iterdir() if p.suffix in SUFFIXES)
    if not shards:
        raise DataError(f"folder {path} holds no data files ({', '.join(SUFFIXES)}) and is not a saved HF dataset")
    for shard in shards:
        yield from _read_file(shard)


def _read_file(path: Path) -> Iterator[Record]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        yield from _read_jsonl(path)
    elif suffix == ".json":
        yield from _read_json(path)
    elif suffix == ".parquet":
        yield from _read_parquet(path)
    elif suffix == ".csv":
        yield from _read_csv(path)
    else:
        raise DataError(f"{path}: unsupported file type '{suffix}' (use {', '.join(SUFFIXES)})")


def _read_jsonl(path: Path) -> Iterator[Record]:
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            where = f"{path}:{lineno}"
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")  # tolerate a BOM (Windows editors)
            except UnicodeDecodeError as e:
                raise DataError(f"{where}: not valid UTF-8 (byte {e.start}); re-encode the file as UTF-8") from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{where}: invalid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(record, dict):
                raise DataError(f"{where}: expected a JSON object per line, got {type(record).__name__}")
            yield where, record


def _read_json(path: Path) -> Iterator[Record]:
    with open(path, "rb") as f:
        head = f.read(4096).removeprefix(b"\xef\xbb\xbf").lstrip()
    if head.startswith(b"{"):  # JSON Lines saved with a .json suffix (common for HF exports)
        yield from _read_jsonl(path)
        return
    try:
        data = json.loads(path.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not valid UTF-8 (byte {e.start}); re-encode the file as UTF-8") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON array of records or JSON Lines")
    for i, record in enumerate(data):
        if not isinstance(record, dict):
            raise DataError(f"{path}[{i}]: expected a JSON object, got {type(record).__name__}")
        yield f"{path}[{i}]", record


def _read_parquet(path: Path) -> Iterator[Record]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises several types for a corrupt file
        raise DataError(f"{path}: not a readable Parquet file ({e})") from None
    row = 0
    for batch in pf.iter_batches(batch_size=1024):
        for record in batch.to_pylist():
            yield f"{path}[row {row}]", record
            row += 1


def _read_csv(path: Path) -> Iterator[Record]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            for i, record in enumerate(csv.DictReader(f)):
                yield f"{path}:{i + 2}", dict(record)  # +2: header line, 1-based
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not valid UTF-8 (byte {e.start}); re-encode the file as UTF-8") from None


def _offline() -> bool:
    """HF_HUB_OFFLINE / HF_DATASETS_OFFLINE set: a missing "org/name" path is a missing file, not a hub id."""
    return any(os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on")
               for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def _is_hub_id(source: str) -> bool:
    parts = source.split("/")
    return len(parts) == 2 and all(parts) and not Path(source).suffix


def _read_hub(repo_id: str) -> Iterator[Record]:
    """Stream a hub dataset's train split (needs network; never used by tests or presets)."""
    from datasets import load_dataset

    try:
        ds = load_dataset(repo_id, split="train", streaming=True)
    except Exception as e:  # offline, unknown id, gated: all one user-facing situation
        raise DataError(f"cannot load hub dataset '{repo_id}' ({type(e).__name__}); "
                        "check the id and your network, or point to a local file") from None
    for i, row in enumerate(ds):
        yield f"{repo_id}[{i}]", row
