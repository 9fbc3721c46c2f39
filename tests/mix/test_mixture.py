import json

import pytest

from tellkit import api
from tellkit.api import load
from tellkit.errors import DataError
from tellkit.mix.prepare import mix


def run_mix(config_file, tmp_path, *overrides):
    return api.mix(load(config_file, list(overrides)), tmp_path / "out")  # `tellkit mix`: built and written


@pytest.mark.parametrize("ratio", [1, 3, 10])
def test_achieved_ratio_within_tolerance(config_file, tmp_path, ratio):
    r = run_mix(config_file, tmp_path, f"mix.ratio={ratio}").report
    assert abs(r["achieved_ratio"] - ratio) <= 0.01 * ratio
    assert r["ratio_within_tolerance"] is True
    assert r["general"]["tokens"] == pytest.approx(ratio * r["task"]["tokens"], rel=0.01)
    assert r["general"]["unique_examples"] == r["general"]["examples"]  # drawn without replacement


def test_anchor_only_on_task_examples(config_file, tmp_path):
    run_mix(config_file, tmp_path)
    rows = [json.loads(l) for l in (tmp_path / "out" / "mixture.jsonl").read_text().splitlines()]
    assert {r["source"] for r in rows} == {"task", "general"}
    for r in rows:
        first_user = next(m for m in r["messages"] if m["role"] == "user")["content"]
        assert first_user.startswith("ANCHOR: colour task.") == (r["source"] == "task")
    # the mixture is shuffled, not task-block then general-block
    sources = [r["source"] for r in rows]
    assert sources != sorted(sources) and sources != sorted(sources, reverse=True)


def test_fingerprint_fixed_by_seed(config_file, tmp_path):
    a = run_mix(config_file, tmp_path / "a").report["fingerprint"]
    b = run_mix(config_file, tmp_path / "b").report["fingerprint"]
    c = run_mix(config_file, tmp_path / "c", "mix.seed=1").report["fingerprint"]
    assert a == b and a != c
    assert (tmp_path / "a/out/mixture.jsonl").read_bytes() == (tmp_path / "b/out/mixture.jsonl").read_bytes()


def test_task_repeats_and_methods(config_file, tmp_path):
    r = run_mix(config_file, tmp_path / "r", "mix.task_repeats=3").report
    assert r["task"]["examples"] == 3 * r["task"]["unique_examples"] == 3 * 24
    sft = run_mix(config_file, tmp_path / "s", "mix.method=sft").report
    assert sft["general"]["examples"] == 0 and sft["task"]["examples"] == 24
    go = run_mix(config_file, tmp_path / "g", "mix.method=general-only").report
    assert go["task"]["examples"] == 0 and go["general"]["tokens"] == pytest.approx(3 * go["task_tokens_reference"], rel=0.01)


def test_token_budget_takes_a_seeded_subset(config_file, tmp_path):
    r = run_mix(config_file, tmp_path, "task.token_budget=200").report
    assert 0 < r["task"]["tokens"] <= 200 and r["task"]["examples"] < 24


def test_sft_matched_reaches_the_token_target(config_file, tmp_path):
    cfg = load(config_file, ["mix.method=sft-matched"])
    m = mix(cfg, match_tokens=5000)
    tokens = m.report["task"]["tokens"]
    assert abs(tokens - 5000) <= max(m.task.data.column("n_tokens").to_numpy())


def test_impossible_ratio_says_how_many_tokens_are_missing(config_file, tmp_path):
    with pytest.raises(DataError, match=r"missing\).*allow_general_repeats"):
        run_mix(config_file, tmp_path, "mix.ratio=10000")
    r = run_mix(config_file, tmp_path, "mix.ratio=500", "mix.allow_general_repeats=true").report
    assert r["general_repeat_factor"] > 1
    assert abs(r["achieved_ratio"] - 500) <= 5


def test_second_run_hits_the_tokenization_cache(config_file, tmp_path):
    from tellkit.mix.prepare import prepare

    cfg = load(config_file)
    first = prepare(cfg)
    mix(cfg, prepared=first)
    second = prepare(cfg)  # a fresh tokenizer, as in a new process
    mix(cfg, prepared=second)
    assert first.infos["general"]["cache_key"] == second.infos["general"]["cache_key"]
    assert all(info["cache_hit"] for info in second.infos.values())


def test_token_budget_picks_the_same_examples_with_and_without_anchor(config_file, tmp_path):
    def ids(method):
        run_mix(config_file, tmp_path / method, "task.token_budget=300", f"mix.method={method}")
        rows = [json.loads(l) for l in (tmp_path / method / "out" / "mixture.jsonl").read_text().splitlines()]
        return sorted(r["id"] for r in rows if r["source"] == "task")

    assert ids("tell") == ids("sft") == ids("sft+anchor") == ids("tell-no-anchor")


def test_tell_no_anchor_is_tells_mixture_without_the_anchor(config_file, tmp_path):
    tell = run_mix(config_file, tmp_path / "t", "task.token_budget=300").report
    bare = run_mix(config_file, tmp_path / "n", "task.token_budget=300", "mix.method=tell-no-anchor").report
    assert tell["anchor"] and bare["anchor"] is None
    anchor = tell["anchor"]
    rows = [json.loads(l) for l in (tmp_path / "n" / "out" / "mixture.jsonl").read_text().splitlines()]
    assert rows and not any(anchor in json.dumps(r) for r in rows)
    assert bare["task"]["examples"] == tell["task"]["examples"] and bare["task"]["tokens"] < tell["task"]["tokens"]
    # the same ratio, counted on its own (unanchored) task tokens
    assert bare["general"]["tokens"] == pytest.approx(3 * bare["task"]["tokens"], rel=0.05)
    assert api.load(config_file).compare.methods == ["tell", "sft", "sft+anchor", "sft-matched", "general-only", "base"]


# ------------------------------------------------------------------ writing a mixture safely (issue 26)


def test_mix_removes_a_killed_mixs_temp_file_and_refuses_a_running_one(config_file, tmp_path):
    import subprocess
    import sys

    from tellkit.errors import TellkitError

    out = tmp_path / "out"
    run_mix(config_file, tmp_path)
    stale = out / ".mixture.jsonl.k1ll3dxx.tmp.jsonl"  # what a mix killed while writing leaves (98 MB seen)
    stale.write_text("x" * 10_000)
    run_mix(config_file, tmp_path)
    assert not stale.exists()
    # a second tellkit process writing the same folder: the folder lock (flock) says so
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], "
                               "os.O_RDONLY); fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); "
                               "time.sleep(120)", str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(TellkitError, match=f"another tellkit process is writing {out}"):
            run_mix(config_file, tmp_path)
    finally:
        holder.kill()
        holder.wait()
    run_mix(config_file, tmp_path)  # the lock died with its process


def test_mix_never_writes_into_a_folder_of_the_users_and_train_takes_a_mixed_one(config_file, tmp_path):
    from tellkit.errors import TellkitError
    from tellkit.runs.rundir import RunDir

    mine = tmp_path / "out"
    mine.mkdir()
    (mine / "mixture.jsonl").write_text("my own data\n")
    with pytest.raises(TellkitError, match="is not a tellkit run"):
        run_mix(config_file, tmp_path)
    assert [p.name for p in mine.iterdir()] == ["mixture.jsonl"] and (mine / "mixture.jsonl").read_text() == "my own data\n"
    (mine / "mixture.jsonl").unlink()
    run_mix(config_file, tmp_path)  # an empty folder becomes a mixed run folder...
    cfg = load(config_file)
    assert RunDir(mine).check(cfg)["status"] == "mixed"  # ...which `tellkit train` of this config continues
    assert RunDir(mine).check(load(config_file, ["mix.ratio=1"])) is None  # and another config starts afresh


def test_mixture_json_never_describes_another_mixture_jsonl(config_file, tmp_path, monkeypatch):
    import hashlib
    import os

    out = tmp_path / "pair"
    mix(load(config_file)).write(out)
    newer = mix(load(config_file, ["mix.seed=1"]))
    real, calls = os.replace, []

    def killed_between_the_renames(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(src, dst)

    monkeypatch.setattr(os, "replace", killed_between_the_renames)
    with pytest.raises(KeyboardInterrupt):
        newer.write(out)
    monkeypatch.undo()
    digest = hashlib.sha256((out / "mixture.jsonl").read_bytes()).hexdigest()
    record = out / "mixture.json"
    assert not record.exists() or json.loads(record.read_text())["fingerprint"] == digest
    assert sorted(p.name for p in out.iterdir()) == ["mixture.jsonl"]  # no temp file left either
