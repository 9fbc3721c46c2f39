"""Tokenize a data source once into a memory-mapped Arrow file, keyed by what changes it.

The key covers the data's content hash, the tokenizer, its chat template, the
anchor (text, position, separator), max_length and the encoding's version. A second run, or every cell
of a sweep, reuses the file; a 10^8-token corpus is streamed through in
batches so memory stays bounded, and reading it back is a memory map.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from pathlib import Path

import pyarrow as pa
from datasets import Dataset
from tqdm.auto import tqdm

from .anchor import apply_anchor
from .formats import to_examples
from .readers import read_records
from .tokenize import ENCODING, encode

SCHEMA = pa.schema([
    ("id", pa.string()), ("messages", pa.string()), ("input_ids", pa.list_(pa.int32())),
    ("labels", pa.list_(pa.int32())), ("n_tokens", pa.int32()), ("n_supervised", pa.int32()),
])
BATCH = 512


def cache_root() -> Path:
    return Path(os.environ.get("TELLKIT_CACHE", Path.home() / ".cache" / "tellkit"))


def data_fingerprint(source: str) -> str:
    """sha256 of the source's bytes (all shards in order); a hub id hashes its name."""
    h = hashlib.sha256()
    files = _source_files(source)
    if not files:
        h.update(source.encode())
    for f in files:
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _source_files(source: str) -> list[Path]:
    if any(ch in source for ch in "*?["):
        return sorted(Path(p) for p in glob.glob(source))
    path = Path(source)
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    return [path] if path.is_file() else []


def tokenizer_fingerprint(tokenizer) -> str:
    h = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        # Truncation/padding are call-time state (encode(truncation=True) leaves them set), not identity.
        spec = json.loads(backend.to_str())
        spec["truncation"] = spec["padding"] = None
        h.update(json.dumps(spec, sort_keys=True).encode())
    else:
        h.update(repr(sorted(tokenizer.get_vocab().items())).encode())
    h.update(str(tokenizer.chat_template).encode())
    return h.hexdigest()


def tokenized_dataset(source: str, fmt: str, columns: dict, tokenizer, *, max_length: int,
                      anchor: str | None = None, position: str = "prefix", separator: str = "\n\n",
                      name: str = "data", data_sha: str | None = None) -> tuple[Dataset, dict]:
    """The tokenized source as a memory-mapped Dataset, and a small info dict (fingerprints, cache hit)."""
    data_sha = data_sha or data_fingerprint(source)
    key = hashlib.sha256(json.dumps([data_sha, fmt, columns, tokenizer_fingerprint(tokenizer), anchor,
                                     position, separator, max_length, ENCODING],
                                    sort_keys=True).encode()).hexdigest()[:24]
    path = cache_root() / "tokenized" / f"{name}-{key}.arrow"
    hit = path.exists()
    if not hit:
        _write(path, source, fmt, columns, tokenizer, max_length, anchor, position, separator, name)
    info = {"source": source, "data_sha256": data_sha, "cache_key": key, "cache_hit": hit, "cache_file": str(path)}
    return Dataset.from_file(str(path)), info


def _write(path: Path, source, fmt, columns, tokenizer, max_length, anchor, position, separator, name) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    rows: list[dict] = []
    try:
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_stream(sink, SCHEMA) as writer:
            examples = to_examples(read_records(source), fmt, columns, id_prefix=name)
            for ex in tqdm(examples, desc=f"tokenize {name}", unit=" ex", leave=False):
                messages = apply_anchor(ex["messages"], anchor, position, separator)
                rows.append({"id": ex["id"], "messages": json.dumps(messages, ensure_ascii=False),
                             **encode(tokenizer, messages, max_length)})
                if len(rows) >= BATCH:
                    writer.write_batch(pa.RecordBatch.from_pylist(rows, schema=SCHEMA))
                    rows.clear()
            if rows:
                writer.write_batch(pa.RecordBatch.from_pylist(rows, schema=SCHEMA))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
