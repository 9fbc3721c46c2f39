"""The tellkit model cache: ``$TELLKIT_CACHE/models/<name>`` (default ``~/.cache/tellkit``).

A cached build is made in a hidden sibling folder and renamed into place when
complete, with a marker file written last, so an interrupted build never looks
finished and concurrent builders never see each other's half-written files.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tellkit.errors import ModelError

MARKER = "tellkit_model.json"  # written last into a cached conversion; holds its format version
_STALE_TMP_S = 3600.0  # leftovers of interrupted conversions older than this are removed

Builder = Callable[[Path], "dict[str, Any] | None"]


def default_cache_dir() -> Path:
    """The tellkit cache root: ``$TELLKIT_CACHE`` or ``~/.cache/tellkit``."""
    env = os.environ.get("TELLKIT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "tellkit"


def _read_marker(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _is_complete(folder: Path, name: str, version: int) -> bool:
    marker = _read_marker(folder)
    return (
        marker is not None
        and marker.get("alias") == name
        and marker.get("format_version") == version
        and (folder / "config.json").is_file()
        and (folder / "model.safetensors").is_file()
    )


def _remove_stale_tmp(models_dir: Path, name: str) -> None:
    now = time.time()
    for prefix in (f".{name}.tmp-", f".{name}.old-"):
        for p in models_dir.glob(prefix + "*"):
            try:
                if now - p.stat().st_mtime > _STALE_TMP_S:
                    shutil.rmtree(p, ignore_errors=True)
            except OSError:
                pass


def cached_build(name: str, version: int, builder: Builder, cache_dir: Path | None) -> Path:
    """The cached model folder ``name`` at ``version``, built by ``builder(tmp_folder)`` if missing or outdated."""
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    models_dir = root / "models"
    final = models_dir / name
    if _is_complete(final, name, version):
        return final
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=models_dir))
    except OSError as e:
        raise ModelError(
            f"cannot write the tellkit model cache at {models_dir} ({e.strerror or e}); "
            "set TELLKIT_CACHE to a writable folder"
        ) from e
    _remove_stale_tmp(models_dir, name)
    try:
        t0 = time.perf_counter()
        extra = builder(tmp) or {}
        marker = {
            "alias": name,
            "format_version": version,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "build_seconds": round(time.perf_counter() - t0, 2),
            **extra,
        }
        (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        _relax_permissions(tmp)
        _publish(tmp, final, name, version)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _relax_permissions(folder: Path) -> None:
    """mkdtemp makes a 0700 folder; give the finished one the usual umask permissions."""
    umask = 0o022
    try:  # read the umask without os.umask(), which would briefly change it for all threads
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                umask = int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    try:
        folder.chmod(0o777 & ~umask)
        for p in folder.iterdir():
            if p.is_file():
                p.chmod(0o666 & ~umask)
    except OSError:
        pass


def _publish(tmp: Path, final: Path, name: str, version: int) -> None:
    """Rename the finished ``tmp`` folder to ``final`` (replacing an outdated one)."""
    if final.exists() or final.is_symlink():
        if _is_complete(final, name, version):  # another process finished first: keep theirs
            return
        old = final.with_name(f".{name}.old-{os.getpid()}-{time.time_ns()}")
        try:
            final.rename(old)
        except FileNotFoundError:
            old = None
        try:
            tmp.rename(final)
        finally:
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        return
    try:
        tmp.rename(final)
    except OSError:
        if not _is_complete(final, name, version):  # lost a race to a finished build: fine
            raise
