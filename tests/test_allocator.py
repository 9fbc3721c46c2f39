"""The malloc the CLI preloads (tellkit/allocator.py): which library, when it re-executes, what records say."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tellkit import allocator, cli


@pytest.fixture
def fake_lib(tmp_path, monkeypatch):
    lib = tmp_path / "libtcmalloc_minimal.so.4"
    lib.write_bytes(b"")
    monkeypatch.setattr(allocator, "_system_library", lambda name: str(lib) if name == "tcmalloc_minimal" else None)
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    monkeypatch.delenv("_TELLKIT_REEXEC", raising=False)
    monkeypatch.delenv(allocator.ENV, raising=False)
    monkeypatch.setattr(allocator.sys, "platform", "linux")
    return str(lib)


@pytest.fixture
def execs(monkeypatch):
    calls = []
    monkeypatch.setattr(allocator.os, "execve", lambda exe, argv, env: calls.append((exe, argv, env)))
    return calls


def test_auto_prefers_the_system_tcmalloc_and_system_means_none(fake_lib, monkeypatch):
    assert allocator.preferred() == fake_lib
    monkeypatch.setenv(allocator.ENV, "system")
    assert allocator.preferred() is None
    monkeypatch.setenv(allocator.ENV, "/opt/libfoo.so")
    assert allocator.preferred() == "/opt/libfoo.so"


def test_without_tcmalloc_auto_falls_back_to_mimalloc_then_glibc(fake_lib, monkeypatch, tmp_path):
    monkeypatch.setattr(allocator, "_system_library", lambda name: None)
    site = tmp_path / "site" / "cmeel.prefix" / "lib"
    monkeypatch.setattr(allocator.sys, "path", [str(tmp_path / "site")])
    assert allocator.preferred() is None
    site.mkdir(parents=True)
    (site / "libmimalloc.so.3").write_bytes(b"")
    assert allocator.preferred() == str(site / "libmimalloc.so.3")


def test_the_command_reexecutes_once_with_the_library_preloaded(fake_lib, execs, monkeypatch):
    monkeypatch.setattr(allocator.sys, "orig_argv", ["python", "/venv/bin/tellkit", "train", "c.yaml"])
    allocator.reexec_with_preferred()
    (exe, argv, env), = execs
    assert argv[1:] == ["/venv/bin/tellkit", "train", "c.yaml"] and env["LD_PRELOAD"] == fake_lib
    assert env["_TELLKIT_REEXEC"] == "1"
    monkeypatch.setenv("_TELLKIT_REEXEC", "1")  # the re-executed process (even if the loader ignored it)
    allocator.reexec_with_preferred()
    monkeypatch.delenv("_TELLKIT_REEXEC")
    monkeypatch.setenv("LD_PRELOAD", "/usr/lib/libjemalloc.so.2")  # the user chose one already
    allocator.reexec_with_preferred()
    assert len(execs) == 1
    assert allocator.kind() == "jemalloc" and allocator.active() == "/usr/lib/libjemalloc.so.2"


def test_a_mimalloc_reexec_keeps_its_pages(fake_lib, execs, monkeypatch):
    mimalloc = fake_lib.replace("tcmalloc_minimal", "mimalloc")
    allocator.Path(mimalloc).write_bytes(b"")
    monkeypatch.setenv(allocator.ENV, mimalloc)
    allocator.reexec_with_preferred()
    assert execs[0][2]["MIMALLOC_PURGE_DELAY"] == "-1"


def test_only_the_console_command_reexecutes(config_file, monkeypatch):
    calls = []
    monkeypatch.setattr(allocator, "reexec_with_preferred", lambda: calls.append("malloc"))
    monkeypatch.setattr(cli.threads, "configure", lambda: calls.append("threads"))  # see tests/test_threads.py
    assert cli.main(["validate", str(config_file)]) == 0  # a call from Python (tests, notebooks)
    assert calls == []
    monkeypatch.setattr(cli.sys, "argv", ["tellkit", "validate", str(config_file)])
    assert cli.main() == 0
    assert calls == ["threads", "malloc"]  # the thread choice is made once, then inherited by the re-exec


def test_the_memory_estimate_follows_the_allocator(monkeypatch, config_file):
    from tellkit.config import load_config
    from tellkit.train.memory import ModelShape, estimate

    cfg = load_config(config_file)
    shape = ModelShape.load(cfg.model.name)
    monkeypatch.setattr(allocator, "kind", lambda: "system")
    glibc = estimate(shape, cfg, 4096, budget=(64, "", "cpu"))
    monkeypatch.setattr(allocator, "kind", lambda: "tcmalloc")
    tc = estimate(shape, cfg, 4096, budget=(64, "", "cpu"))
    assert tc.parts_gib["activations"] < 0.6 * glibc.parts_gib["activations"]
    assert tc.summary()["malloc"] == "tcmalloc"


@pytest.mark.skipif(not (allocator.sys.platform.startswith("linux") and os.uname().machine in ("x86_64", "aarch64")),
                    reason="cmeel-mimalloc has wheels for Linux x86-64 and aarch64 only")
def test_a_plain_install_gives_the_command_a_low_memory_malloc():
    # cmeel-mimalloc is a default dependency: the installed package alone must be enough, and the
    # re-executed process must really have the library mapped, not just named in LD_PRELOAD.
    from importlib import metadata

    assert metadata.version("cmeel-mimalloc")
    assert allocator._bundled_mimalloc() and os.path.isfile(allocator._bundled_mimalloc())
    code = ("from tellkit import allocator; allocator.reexec_with_preferred(); "
            "maps = open('/proc/self/maps').read(); print(allocator.kind(), allocator.kind() in maps)")
    env = {k: v for k, v in os.environ.items() if k not in (allocator.ENV, "LD_PRELOAD", "_TELLKIT_REEXEC")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.split() in (["mimalloc", "True"], ["tcmalloc", "True"])  # tcmalloc where the system has it
