import json
import os
import stat

import pytest

from tellkit.io import (
    atomic_path,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
)


def test_write_text_creates_parents_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a" / "b" / "out.txt"
    assert write_text_atomic(target, "héllo\n") == target
    assert target.read_text(encoding="utf-8") == "héllo\n"
    assert os.listdir(target.parent) == ["out.txt"]


def test_write_json_format(tmp_path):
    target = tmp_path / "x.json"
    write_json_atomic(target, {"b": 1, "a": "ü"})
    text = target.read_text(encoding="utf-8")
    assert text == '{\n  "b": 1,\n  "a": "ü"\n}\n'  # key order kept, no \u escapes
    assert json.loads(text) == {"b": 1, "a": "ü"}


def test_write_bytes_overwrites(tmp_path):
    target = tmp_path / "x.bin"
    target.write_bytes(b"old")
    write_bytes_atomic(target, b"\x00new")
    assert target.read_bytes() == b"\x00new"
    assert os.listdir(tmp_path) == ["x.bin"]


def test_new_file_is_world_readable(tmp_path):
    target = write_text_atomic(tmp_path / "r.md", "x")
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_existing_mode_is_kept(tmp_path):
    target = tmp_path / "r.md"
    target.write_text("old")
    target.chmod(0o600)
    write_text_atomic(target, "new")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_atomic_path_keeps_suffix_and_renames(tmp_path):
    target = tmp_path / "fig.png"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".png" and tmp != target
        tmp.write_bytes(b"png")
    assert target.read_bytes() == b"png"
    assert os.listdir(tmp_path) == ["fig.png"]


def test_failure_leaves_original_untouched(tmp_path):
    target = tmp_path / "keep.txt"
    target.write_text("original")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half-writ")
            raise RuntimeError("boom")
    assert target.read_text() == "original"
    assert os.listdir(tmp_path) == ["keep.txt"]


def test_failure_without_original_creates_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(tmp_path / "new.txt"):
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


def _folder(path, **files):
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (path / name).write_text(text)
    return path


@pytest.mark.parametrize("exchange", [True, False])
def test_replace_dir_never_leaves_the_destination_missing(tmp_path, monkeypatch, exchange):
    """The adapter is swapped in: at no point between the old and the new folder is there none."""
    import shutil

    import tellkit.io as tio

    dest = _folder(tmp_path / "adapter", weights="old")
    new = _folder(tmp_path / ".adapter.new", weights="new")
    if not exchange:  # a kernel or file system without renameat2's exchange: the move-aside fallback
        monkeypatch.setattr(tio, "_exchange", lambda a, b: False)
    real_rmtree, real_replace, seen = shutil.rmtree, tio.os.replace, []

    def watch(fn):
        def wrapped(*args, **kwargs):
            out = fn(*args, **kwargs)
            seen.append((fn.__name__, dest.is_dir()))  # after the call: is there an adapter?
            return out
        return wrapped

    monkeypatch.setattr(tio.shutil, "rmtree", watch(real_rmtree))
    monkeypatch.setattr(tio.os, "replace", watch(real_replace))
    tio.replace_dir(new, dest)
    assert (dest / "weights").read_text() == "new" and not new.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]
    assert all(present for name, present in seen if name == "rmtree")  # never deleted without a replacement


def test_check_writable_names_the_folder_and_leaves_nothing(tmp_path):
    from tellkit.io import check_writable

    check_writable(tmp_path / "new" / "deeper" / "out.jsonl")  # missing folders: the write creates them
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError) as e:
        check_writable(tmp_path / "f" / "out.jsonl")
    assert e.value.filename == str(tmp_path / "f")
    with pytest.raises(IsADirectoryError):
        check_writable(tmp_path)


def test_a_write_that_fails_without_a_file_name_names_its_target(tmp_path):
    import errno

    from tellkit.io import atomic_path

    with pytest.raises(OSError) as e:
        with atomic_path(tmp_path / "out.json"):
            raise OSError(errno.ENOSPC, "No space left on device")  # what write() raises on a full disk
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(tmp_path / "out.json")
    assert list(tmp_path.iterdir()) == []
