"""Atomic file writes.

Runs can be interrupted (Ctrl-C, OOM kill, preemption). Writing to a temp file
in the destination folder and then `os.replace`-ing it means readers only ever
see the old file or the complete new one, never a truncated one. The temp file
must live in the same folder so the rename stays on one filesystem (atomic).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path to write to; it replaces `path` only if the block succeeds.

    On any exception the temp file is removed and `path` is left untouched.
    The temp name keeps the real suffix so writers that dispatch on the
    extension (e.g. `fig.savefig`) pick the right format.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=f".tmp{target.suffix}", dir=target.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        # mkstemp creates 0600 files; keep an existing file's mode, else use
        # 0644 so reports stay readable by others, as a plain open() would.
        os.chmod(tmp, target.stat().st_mode & 0o7777 if target.exists() else 0o644)
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Atomically write `data` to `path`; returns the path."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            # fsync before the rename: otherwise a crash can leave the new
            # name pointing at an empty file on some filesystems.
            os.fsync(f.fileno())
    return Path(path)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Atomically write UTF-8 `text` to `path`; returns the path."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> Path:
    """Atomically write `obj` as indented UTF-8 JSON with a trailing newline."""
    text = json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False) + "\n"
    return write_text_atomic(path, text)


def read_user_text(path: str | os.PathLike[str], what: str) -> str:
    """A user-supplied UTF-8 text file; `what` names it in the error (e.g. "anchor.file='a.txt'")."""
    from .errors import ConfigError

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what}: file not found")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{what}: not UTF-8 text") from None
