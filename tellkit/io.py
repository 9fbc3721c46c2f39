"""Atomic file writes.

Runs can be interrupted (Ctrl-C, OOM kill, preemption). Writing to a temp file
in the destination folder and then `os.replace`-ing it means readers only ever
see the old file or the complete new one, never a truncated one. The temp file
must live in the same folder so the rename stays on one filesystem (atomic).
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
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
    with atomic_paths(path) as (tmp,):
        yield tmp


@contextmanager
def atomic_paths(*paths: str | os.PathLike[str]) -> Iterator[list[Path]]:
    """Temp paths for files that belong together (mixture.jsonl + mixture.json); they replace their
    targets only if the block succeeds.

    No file system renames two files at once, so the *last* path is the set's record: it is removed
    before the others are replaced and put in after them. A crash in between leaves the data without
    its record (visibly unfinished), never an old record describing new data.
    """
    targets = [Path(p) for p in paths]
    tmps: list[Path] = []
    try:
        for target in targets:
            tmps.append(_temp_for(target))
        yield tmps
        if len(targets) > 1:
            targets[-1].unlink(missing_ok=True)
        for tmp, target in zip(tmps, targets):
            os.replace(tmp, target)
    except BaseException as e:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.filename is None:
            # a failed write (e.g. ENOSPC) names no file: say which output it was, for the one-line error
            where = targets[0] if len(targets) == 1 else targets[0].parent
            raise OSError(e.errno, e.strerror, str(where)) from e
        raise


def _temp_for(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{target.suffix}", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        # mkstemp creates 0600 files; keep an existing file's mode, else use
        # 0644 so reports stay readable by others, as a plain open() would.
        os.chmod(tmp, target.stat().st_mode & 0o7777 if target.exists() else 0o644)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def replace_dir(new: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Put the finished folder `new` at `dest`, replacing the folder there without a moment in which
    `dest` is missing where the OS can (Linux: one renameat2 RENAME_EXCHANGE). Elsewhere the old folder
    is moved aside first and deleted only once the new one is in place."""
    new, dest = Path(new), Path(dest)
    if not dest.exists():
        os.replace(new, dest)
    elif _exchange(new, dest):
        shutil.rmtree(new)  # `new` now names the old folder
    else:
        old = dest.with_name(f".{dest.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dest, old)
        os.replace(new, dest)
        shutil.rmtree(old)
    return dest


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where that is not available."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def check_writable(path: str | os.PathLike[str]) -> None:
    """Raise the OSError that writing the file `path` would raise (permission denied, read-only file
    system, a file where a folder should be), before the work whose result goes there is done. Leaves
    nothing behind: the probe is a temp file in the nearest existing folder, removed at once."""
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(target))
    folder = target.parent
    while not folder.exists():  # the write creates the missing folders below this one
        folder = folder.parent
    if not folder.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(folder))
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as e:
        raise type(e)(e.errno, e.strerror, str(folder)) from None  # name the folder, not the probe
    os.close(fd)
    os.unlink(probe)


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
    return write_text_atomic(path, _json_text(obj))


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """`obj` as write_json_atomic formats it, written in place (to a temp path from atomic_paths)."""
    Path(path).write_text(_json_text(obj), encoding="utf-8")
    return Path(path)


def _json_text(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False) + "\n"


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
