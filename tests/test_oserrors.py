"""OS errors on the user's paths (permission denied, disk full, a file where a folder should be) are one
`error:` line naming the path, exit 2, with nothing half-written (issue 26).

Permissions are real: the CLI runs in a subprocess that cannot bypass file modes. Tests often run as
root, who can; there the subprocess drops the two capabilities that let root ignore them (setpriv).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys

import pytest

from tellkit.cli import main
from tests.helpers import user_error, visible_lines

DRIVER = """
import contextlib, io, json, sys
from tellkit.cli import main
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main(argv)
        except SystemExit as e:
            rc = e.code
        except BaseException as e:  # what an uncaught error would be: a traceback
            rc = f"uncaught {type(e).__name__}: {e}"
    print(json.dumps({"rc": rc, "err": err.getvalue()}), flush=True)
"""


def _unprivileged() -> list[str]:
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: file modes cannot be enforced")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]


def run_unprivileged(cases: list[list[str]], cwd) -> list[dict]:
    """Each argv through tellkit.cli.main in one subprocess that file modes apply to."""
    r = subprocess.run([*_unprivileged(), sys.executable, "-c", DRIVER, json.dumps(cases)], cwd=cwd,
                       capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    return [json.loads(line) for line in r.stdout.splitlines()]


def one_error_line(result: dict, *expected: str) -> None:
    lines = visible_lines(result["err"])
    assert result["rc"] == 2, result
    assert "Traceback" not in result["err"] and len(lines) == 1 and lines[0].startswith("error: "), lines
    for text in expected:
        assert text in lines[0], (text, lines[0])


def test_permission_denied_is_one_line_naming_the_path(config_file):
    folder = config_file.parent
    os.chmod(folder / "task.jsonl", 0)
    (folder / "locked.yaml").write_text(config_file.read_text())
    os.chmod(folder / "locked.yaml", 0)
    (folder / "ro").mkdir()
    os.chmod(folder / "ro", 0o555)
    try:
        results = run_unprivileged([
            ["mix", str(config_file)],
            ["validate", "locked.yaml"],
            ["run", str(config_file), "task.path=test.jsonl", "output.dir=ro/run"],
            ["mix", str(config_file), "task.path=test.jsonl", "--out", "ro/mix"],
        ], cwd=folder)
    finally:
        os.chmod(folder / "ro", 0o755)
        os.chmod(folder / "task.jsonl", 0o644)
    one_error_line(results[0], str(folder / "task.jsonl"), "permission denied", "check its permissions")
    one_error_line(results[1], "locked.yaml", "permission denied")
    one_error_line(results[2], str(folder / "ro"), "permission denied")
    one_error_line(results[3], "ro", "permission denied")
    assert list((folder / "ro").iterdir()) == []  # nothing half-written


def test_export_and_predict_to_a_read_only_folder(trained_tiny_run):
    folder = trained_tiny_run.parent
    (folder / "ro").mkdir(exist_ok=True)
    os.chmod(folder / "ro", 0o555)
    try:
        results = run_unprivileged([
            ["export", str(trained_tiny_run), "--out", "ro/merged"],
            ["predict", str(trained_tiny_run), "--input", "test.jsonl", "--output", "ro/preds.jsonl"],
        ], cwd=folder)
    finally:
        os.chmod(folder / "ro", 0o755)
    one_error_line(results[0], "ro: permission denied")  # the folder, not a temp name inside it
    one_error_line(results[1], "ro: permission denied")
    assert list((folder / "ro").iterdir()) == []


def test_predict_checks_its_output_path_before_loading_the_model(trained_tiny_run, capsys, monkeypatch):
    import tellkit.ship.predict as predict

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the output path was checked")

    monkeypatch.setattr(predict, "load_merged", no_model)
    (trained_tiny_run.parent / "a-file").write_text("x")
    out = trained_tiny_run.parent / "a-file" / "preds.jsonl"  # a file where a folder should be
    user_error(["predict", str(trained_tiny_run), "--input", str(trained_tiny_run.parent / "test.jsonl"),
                "--output", str(out)], capsys, str(trained_tiny_run.parent / "a-file"), "not a directory")


def test_disk_full_while_mixing_is_one_line_and_leaves_nothing(config_file, capsys, monkeypatch):
    from tellkit.mix.mixture import Mixture

    def disk_full(self, f, h):
        f.write("{}\n" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")  # what a write() raises: no file name

    monkeypatch.setattr(Mixture, "_write_rows", disk_full)
    out = config_file.parent / "mix"
    user_error(["mix", str(config_file), "--out", str(out)], capsys, str(out), "no space left on device",
               "free some disk space")
    assert not out.exists()  # the folder it created, its run.json and the temp files: all gone


@pytest.fixture
def trained_tiny_run(config_file):
    assert main(["train", str(config_file), "train.max_steps=1"]) == 0
    return config_file.parent / "run"
