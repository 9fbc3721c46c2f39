import json
import os
import shutil

import pytest

from tellkit.errors import TellkitError
from tellkit.metrics import compute
from tellkit.study.compare import summarise
from tellkit.study.winner import link_best, pick, verdict_table

REF = '{"a": 1}'


def _cell(tmp_path, method, seed, n_right, n=40, train_tokens=1000):
    preds = [REF] * n_right + ["nope"] * (n - n_right)
    run_dir = tmp_path / f"{method}-s{seed}"
    (run_dir / "adapter").mkdir(parents=True, exist_ok=True)
    return {"method": method, "seed": seed, "run_dir": str(run_dir), "metrics": compute(["json"], preds, [REF] * n),
            "cost": {"train_tokens": 0 if method == "base" else train_tokens}}


def _result(cells, methods, seeds):
    return {"methods": methods, "seeds": seeds, "cells": cells, "summary": summarise(cells, methods)}


def test_clear_winner_and_its_best_seed(tmp_path):
    cells = [_cell(tmp_path, "tell", s, k, train_tokens=5000) for s, k in ((0, 36), (1, 38), (2, 37))]
    cells += [_cell(tmp_path, "sft", s, 10, train_tokens=500) for s in (0, 1, 2)]
    cells += [_cell(tmp_path, "base", s, 0) for s in (0, 1, 2)]
    w = pick(_result(cells, ["tell", "sft", "base"], [0, 1, 2]), "json/strict")
    assert w["method"] == "tell" and w["tied"] == ["tell"] and not w["by_cost"]
    assert w["seed"] == 1 and w["run_dir"].endswith("tell-s1") and w["seed_value"] == pytest.approx(38 / 40)
    assert "clearly ahead of sft and base" in w["reason"]
    assert "*tell" in verdict_table(w)


def test_tie_goes_to_the_cheapest_and_says_so(tmp_path):
    cells = [_cell(tmp_path, "tell", s, 20 + s, train_tokens=5000) for s in (0, 1, 2)]
    cells += [_cell(tmp_path, "sft-matched", s, 21 + s, train_tokens=5000) for s in (0, 1, 2)]
    cells += [_cell(tmp_path, "sft", s, 20 + s, train_tokens=800) for s in (0, 1, 2)]
    cells += [_cell(tmp_path, "base", s, 0) for s in (0, 1, 2)]
    w = pick(_result(cells, ["tell", "sft-matched", "sft", "base"], [0, 1, 2]), "json/strict")
    assert w["best_mean"] == "sft-matched" and set(w["tied"]) == {"tell", "sft-matched", "sft"}
    assert w["method"] == "sft" and w["by_cost"]
    assert "cheapest" in w["reason"] and "800 training tokens" in w["reason"] and "base is clearly behind" in w["reason"]


def test_base_wins_a_tie_and_no_adapter_is_handed_over(tmp_path):
    cells = [_cell(tmp_path, "tell", s, 1) for s in (0,)] + [_cell(tmp_path, "base", 0, 0)]
    w = pick(_result(cells, ["tell", "base"], [0]), "json/strict")
    assert w["method"] == "base" and w["seed"] is None
    assert "no adapter is handed over" in w["reason"] and "one seed" in w["reason"]


def test_lower_is_better_score(tmp_path):
    from tellkit.metrics import general

    cells = [{"method": m, "seed": 0, "run_dir": str(tmp_path / m), "cost": {"train_tokens": t},
              "metrics": {"general": general.loss_result([x + d for x in (1.0, 2.0, 1.5, 1.2, 1.7)], seed=0)}}
             for m, d, t in (("tell", -0.5, 100), ("sft", 0.4, 10), ("base", 0.0, 0))]
    w = pick(_result(cells, ["tell", "sft", "base"], [0]), "general/loss")
    assert w["method"] == "tell" and not w["higher_is_better"]


def test_link_best_is_relative_and_replaces_a_stale_one(tmp_path):
    out = tmp_path / "cmp"
    for name in ("tell-s0", "sft-s1"):
        (out / name / "adapter").mkdir(parents=True)
    link_best(out, str(out / "tell-s0"))
    best = link_best(out, str(out / "sft-s1"))
    assert best.is_symlink() and os.readlink(best) == "sft-s1" and (best / "adapter").is_dir()
    assert not (out / ".best.tmp").exists()
    assert link_best(out, None) is None and not best.exists() and (out / "sft-s1").is_dir()
    (out / "half").mkdir()
    with pytest.raises(TellkitError, match="no adapter"):
        link_best(out, str(out / "half"))


def test_link_best_copies_where_symlinks_fail(tmp_path, monkeypatch):
    out = tmp_path / "cmp"
    (out / "tell-s0" / "adapter").mkdir(parents=True)
    (out / "tell-s0" / "run.json").write_text("{}")

    def no_symlinks(*args, **kwargs):
        raise OSError("symlinks not supported")

    monkeypatch.setattr(os, "symlink", no_symlinks)
    best = link_best(out, str(out / "tell-s0"))
    assert not best.is_symlink() and (best / "run.json").read_text() == "{}"
    assert link_best(out, str(out / "tell-s0")) == best  # a copied best/ is replaced too


def test_compare_score_must_name_an_evaluated_metric(config_file):
    from tellkit.api import load
    from tellkit.errors import ConfigError

    with pytest.raises(ConfigError, match="compare.score 'label/accuracy' needs metric 'label'"):
        load(str(config_file), ["compare.score=label/accuracy"])


def test_a_best_that_tellkit_did_not_make_is_never_replaced(tmp_path):
    from tellkit.study.winner import check_best

    out = tmp_path / "cmp"
    (out / "tell-s0" / "adapter").mkdir(parents=True)
    best = out / "best"
    best.mkdir()
    (best / "mine.txt").write_text("mine")  # the user's own folder named best
    with pytest.raises(TellkitError, match=f"{best} is not a link tellkit made"):
        link_best(out, str(out / "tell-s0"))
    with pytest.raises(TellkitError, match="not a link tellkit made"):
        link_best(out, None)  # base won: a stale best/ is removed, but never this one
    assert (best / "mine.txt").read_text() == "mine"
    shutil.rmtree(best)
    elsewhere = tmp_path / "important"
    elsewhere.mkdir()
    os.symlink(elsewhere, best)  # a link of the user's, to outside the compare folder
    with pytest.raises(TellkitError, match="not a link tellkit made"):
        check_best(out)
    best.unlink()
    assert link_best(out, str(out / "tell-s0")).is_symlink()  # tellkit's own link is replaced as before
    check_best(out)


def test_compare_refuses_a_best_of_the_users_before_any_cell_trains(config_file, capsys):
    from tests.helpers import user_error

    out = config_file.parent / "run"
    (out / "best").mkdir(parents=True)
    (out / "best" / "mine.txt").write_text("mine")
    (out / "plan.json").write_text(json.dumps({"kind": "compare", "identity": "0" * 16, "cells": [], "config": {}}))
    user_error(["compare", str(config_file), "compare.methods=[tell]", "compare.seeds=[0]"], capsys,
               str(out / "best"), "not a link tellkit made")
    assert sorted(p.name for p in out.iterdir()) == ["best", "plan.json"]  # nothing planned, nothing trained
    assert (out / "best" / "mine.txt").read_text() == "mine"
