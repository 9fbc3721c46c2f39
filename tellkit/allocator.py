"""The memory allocator a tellkit process runs with (Linux): tcmalloc or mimalloc instead of glibc's malloc.

Why: on CPU, a training step frees and reallocates hundreds of MB of activations. glibc's heap keeps
the freed blocks mapped and fragments them, so the process's resident memory at the peak is about
twice the tensors autograd actually holds. A size-class allocator reuses them: SmolLM2-135M, LoRA,
8 x 512 tokens per micro-batch, fp32 on 2 CPU cores (benchmarks/README.md, "Training memory"):

    glibc 8.74 GiB, 191 tok/s | tcmalloc 5.00 GiB, 186 tok/s | mimalloc 5.46 GiB, 171 tok/s
    (jemalloc 4.89 GiB but 108 tok/s: it hands pages back to the OS and faults them in again)

The console command re-executes itself once with the allocator in LD_PRELOAD (a malloc cannot be
swapped in after the process started; Intel's PyTorch launcher does the same). `TELLKIT_MALLOC`
chooses: `auto` (default: the system's tcmalloc, e.g. Debian/Ubuntu `libtcmalloc-minimal4`, else
mimalloc, which tellkit installs on Linux x86-64/aarch64 from PyPI's `cmeel-mimalloc` wheel, so a
plain `pip install tellkit` or `make setup` has a low-memory malloc; else glibc), `system` (glibc,
no re-exec), or the path of a malloc library. Python API users set LD_PRELOAD themselves:
`export LD_PRELOAD=$(python -m tellkit.allocator)`.
"""

from __future__ import annotations

import ctypes.util
import os
import sys
from pathlib import Path

ENV = "TELLKIT_MALLOC"
_KNOWN = ("tcmalloc", "mimalloc", "jemalloc")
# mimalloc returns freed memory to the OS after 10 ms by default, and every page is then faulted in
# again at the next step (147 tok/s); never purging keeps one step's pages for the next (171 tok/s).
_MIMALLOC_ENV = {"MIMALLOC_PURGE_DELAY": "-1"}
HINT = ("on CPU glibc's malloc holds about twice the memory autograd keeps; the tellkit command runs with "
        "mimalloc (installed with tellkit: cmeel-mimalloc) or the system's tcmalloc (apt install "
        "libtcmalloc-minimal4) instead, for a peak about 40% lower; this process has glibc's (TELLKIT_MALLOC=system, "
        "neither installed, or tellkit called from Python: export LD_PRELOAD=$(python -m tellkit.allocator))")


def preferred() -> str | None:
    """The malloc library to preload, or None (glibc): TELLKIT_MALLOC, else tcmalloc, else mimalloc."""
    choice = os.environ.get(ENV, "auto")
    if choice == "system" or not sys.platform.startswith("linux"):
        return None
    if choice != "auto":
        return choice
    for name in ("tcmalloc_minimal", "tcmalloc"):
        found = _system_library(name)
        if found:
            return found
    return _bundled_mimalloc()


def active() -> str:
    """The allocator library this process runs with (for run records), or "system malloc"."""
    preload = os.environ.get("LD_PRELOAD", "")
    for name in _KNOWN:
        if name in preload:
            return next(p for p in preload.replace(":", " ").split() if name in p)
    return "system malloc"


def kind(lib: str | None = None) -> str:
    """"tcmalloc", "mimalloc", "jemalloc" or "system" (glibc's, on Linux): this process's, or that of the
    library path `lib` a run recorded."""
    lib = active() if lib is None else lib
    return next((name for name in _KNOWN if name in lib), "system")


def reexec_with_preferred() -> None:
    """Replace this process by the same command (sys.orig_argv) with the preferred allocator preloaded;
    returns when there is nothing to do (already preloaded, none available, TELLKIT_MALLOC=system)."""
    if kind() != "system" or os.environ.get("_TELLKIT_REEXEC"):
        return
    lib = preferred()
    if not lib or not Path(lib).is_file():
        return
    env = preload_env(lib, os.environ) | {"_TELLKIT_REEXEC": "1"}  # never twice, even if the loader ignored it
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


def preload_env(lib: str, environ) -> dict:
    """`environ` with `lib` preloaded (and mimalloc's settings): how the command, or a benchmark's child
    process that should run as the command would, starts."""
    env = {**environ, "LD_PRELOAD": " ".join(filter(None, [lib, environ.get("LD_PRELOAD")]))}
    return {**_MIMALLOC_ENV, **env} if "mimalloc" in lib else env


def _system_library(name: str) -> str | None:
    found = ctypes.util.find_library(name)  # a soname such as libtcmalloc_minimal.so.4
    if not found:
        return None
    for folder in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib",
                   "/usr/local/lib", "/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu"):
        if (Path(folder) / found).is_file():
            return str(Path(folder) / found)
    return None


def _bundled_mimalloc() -> str | None:
    """libmimalloc from the cmeel-mimalloc wheel (a tellkit dependency on Linux): site-packages/cmeel.prefix/lib."""
    for entry in sys.path:
        libs = sorted((Path(entry or ".") / "cmeel.prefix" / "lib").glob("libmimalloc.so*"))
        if libs:
            return str(libs[0])
    return None


if __name__ == "__main__":  # `python -m tellkit.allocator`: the library to put in LD_PRELOAD (empty: none)
    print(preferred() or "")
