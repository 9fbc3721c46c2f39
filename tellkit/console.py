"""How the command line reads its arguments and reports a failure: one `error:` line, on a line of its own.

* `count`, `seed`: argparse types that range-check every number an option takes.
* `parse`: KEY=VALUE overrides are accepted anywhere on the line, as users type them
  (`tellkit train cfg.yaml --overwrite train.lr=1e-4`).
* `tracked_stderr` + `print_error`: progress bars redraw with "\\r" and never end their line, so an
  error printed after one would share its line (`\\rtokenize task: 0 ex…\\r \\rerror: …`) and
  `tail -1` or a line-splitting script would not see `error:` first. Open bars are closed and the
  line ended before the message.
* `describe_os_error`: an OSError on a user's path (permission denied, disk full, read-only file
  system, ...) as one line naming the path and the fix.
"""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Iterator
from contextlib import contextmanager


def count(text: str) -> int:
    """argparse type: a whole number of at least 1 (0 must never quietly mean "the default")."""
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is less than 1")
    return value


def seed(text: str) -> int:
    """argparse type: a seed, 0 to 2**32 - 1 (what numpy and torch accept)."""
    value = _whole(text)
    if not 0 <= value < 2 ** 32:
        raise argparse.ArgumentTypeError(f"{value} is outside 0 to 4294967295")
    return value


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """parse_args, with KEY=VALUE overrides allowed after options too.

    argparse fills a positional list (the overrides) only up to the first option; what comes after
    it returns as unrecognised, and is taken as overrides when it looks like one."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        takes_overrides = hasattr(args, "overrides")
        unknown = [x for x in extra if not (takes_overrides and "=" in x and not x.startswith("-"))]
        if unknown:
            parser.error("unrecognized arguments: " + " ".join(unknown))
        args.overrides = [*args.overrides, *extra]
    return args


class _Tracked:
    """A text stream that remembers whether its output ends mid-line (a progress bar's "\\r")."""

    def __init__(self, stream):
        self._stream = stream
        self.mid_line = False

    def write(self, text: str) -> int:
        if text:
            self.mid_line = not text.endswith("\n")
        return self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


@contextmanager
def tracked_stderr() -> Iterator[None]:
    """Route sys.stderr through _Tracked for the block (progress bars created in it write through it)."""
    original = sys.stderr
    sys.stderr = _Tracked(original)
    try:
        yield
    finally:
        sys.stderr = original


def print_error(message: str) -> None:
    """`error: message` as the last line of stderr, on a line of its own."""
    tqdm_module = sys.modules.get("tqdm.std")  # never import tqdm just for this
    if tqdm_module is not None:
        for bar in list(getattr(tqdm_module.tqdm, "_instances", ())):
            bar.close()  # a bar left open would redraw (or clear itself) after the message
    if getattr(sys.stderr, "mid_line", False):
        sys.stderr.write("\n")
    # one line even when a message quotes a library's multi-line text
    print(f"error: {' '.join(message.split())}", file=sys.stderr, flush=True)


_FIX = {
    errno.EACCES: "check its permissions, or choose another path",
    errno.EPERM: "check its permissions, or choose another path",
    errno.ENOSPC: "free some disk space there, or choose another output folder",
    errno.EDQUOT: "your disk quota is used up there; free some space, or choose another output folder",
    errno.EROFS: "that file system is read-only; choose another path",
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "a part of that path is a file, not a folder; check the path",
    errno.EISDIR: "that is a folder; give a file",
    errno.EEXIST: "it already exists; remove it or choose another path",
    errno.ENAMETOOLONG: "shorten the path",
}


def describe_os_error(e: OSError) -> str:
    """'PATH: permission denied; check its permissions, or choose another path'."""
    what = (e.strerror or str(e) or type(e).__name__).rstrip(".")
    what = what[:1].lower() + what[1:]
    fix = _FIX.get(e.errno, "check the path and try again")
    if e.filename is None:
        return f"{what} ({type(e).__name__}); {fix}"
    other = f" -> {e.filename2}" if getattr(e, "filename2", None) else ""
    return f"{e.filename}{other}: {what}; {fix}"
