"""The two-axis winner: the best task score among the methods within the forgetting budget
(compare.max_general_drop, on the general score out of distribution, point estimate against base)."""

import math

import pytest

from tellkit.api import load
from tellkit.metrics import budget, compute
from tellkit.study.compare import summarise
from tellkit.study.winner import OVER, hand_over, pick, verdict_table

REF = '{"a": 1}'
N_GENERAL = 400


def general_result(n_right: int, flip_from: int = 0, key: str = "tellkit_wordnet/acc", higher: bool = True) -> dict:
    """A general_ood result over N_GENERAL items: base's right items are the first 240; a method that forgets
    loses items from `flip_from` on (paired: the same items as base's)."""
    items = [1.0 if i < n_right else 0.0 for i in range(N_GENERAL)]
    value = sum(items) / len(items)
    return {"n": N_GENERAL, "scores": {key: {"value": value, "ci_low": value - 0.05, "ci_high": value + 0.05}},
            "items": {key: items}, "higher_is_better": {key: higher}, "aggregation": {key: "mean"},
            "general_score": key, "tasks": [key.split("/")[0]]}


def cell(tmp_path, method, n_task, n_general, train_tokens=1000, seed=0, n=40):
    run_dir = tmp_path / f"{method}-s{seed}"
    (run_dir / "adapter").mkdir(parents=True, exist_ok=True)
    preds = [REF] * n_task + ["nope"] * (n - n_task)
    return {"method": method, "seed": seed, "run_dir": str(run_dir), "cost": {"train_tokens": train_tokens},
            "metrics": {**compute(["json"], preds, [REF] * n), "general_ood": general_result(n_general)}}


def comparison(tmp_path, general: dict[str, int]) -> dict:
    """tell, sft, sft-matched and base; sft-matched has clearly the best task score."""
    task = {"tell": 30, "sft": 18, "sft-matched": 39, "base": 0}
    tokens = {"tell": 5000, "sft": 800, "sft-matched": 5000, "base": 0}
    methods = ["tell", "sft", "sft-matched", "base"]
    cells = [cell(tmp_path, m, task[m], general[m], tokens[m]) for m in methods]
    return {"methods": methods, "seeds": [0], "cells": cells, "summary": summarise(cells, methods)}


FORGETS = {"tell": 242, "sft": 236, "sft-matched": 200, "base": 240}  # sft-matched: -10 points


def test_the_task_score_winner_breaks_the_budget_and_loses(tmp_path, config_file):
    result = comparison(tmp_path, FORGETS)
    cfg = load(config_file, ["compare.score=json/strict"])
    assert cfg.compare.max_general_drop == 0.03  # the default budget
    w = hand_over(result, cfg, tmp_path)
    assert w["without_budget"] == "sft-matched" and w["method"] == "tell"
    assert w["budget"]["excluded"] == ["sft-matched"] and w["budget"]["key"] == "general_ood/tellkit_wordnet/acc"
    row = {r["method"]: r for r in w["rows"]}
    assert row["sft-matched"]["relation"] == OVER and row["sft"]["relation"] == "clearly worse"
    assert "sft-matched has the best task score but changes general tellkit_wordnet/acc by -10.0 points" in w["reason"]
    assert "without the budget sft-matched would win" in w["reason"]
    assert (tmp_path / "best").resolve() == (tmp_path / "tell-s0").resolve()  # best/ follows the rule
    table = verdict_table(w).splitlines()
    assert "tellkit_wordnet/acc vs base" in table[0]
    assert table[1].startswith("*tell") and "reference" in table[4]
    assert "-10.0 points [" in table[3] and "! " in table[3] and "over the forgetting budget" in table[3]


def test_null_budget_is_task_score_only(tmp_path, config_file):
    result = comparison(tmp_path, FORGETS)
    w = hand_over(result, load(config_file, ["compare.score=json/strict", "compare.max_general_drop=null"]),
                  tmp_path / "out")
    assert w["method"] == w["without_budget"] == "sft-matched"
    assert w["budget"]["excluded"] == [] and w["budget"]["methods"]["sft-matched"]["within"] is None


def test_a_drop_within_a_wider_budget_wins(tmp_path, config_file):
    result = comparison(tmp_path, FORGETS)
    w = hand_over(result, load(config_file, ["compare.score=json/strict", "compare.max_general_drop=0.15"]),
                  tmp_path / "out")
    assert w["method"] == "sft-matched" and not w["budget"]["excluded"]
    judged = w["budget"]["methods"]
    assert judged["sft-matched"]["drop"] == pytest.approx(0.10) and judged["sft-matched"]["within"]
    assert judged["tell"]["change"] == pytest.approx(0.005) and judged["base"]["drop"] == 0.0


def test_within_the_budget_ties_still_go_to_the_cheapest(tmp_path):
    general = {"tell": 240, "sft": 240, "sft-matched": 200, "base": 240}
    result = comparison(tmp_path, general)
    for c in result["cells"]:  # tell and sft now tied on the task
        if c["method"] == "sft":
            c["metrics"].update(compute(["json"], [REF] * 30 + ["x"] * 10, [REF] * 40))
    result["summary"] = summarise(result["cells"], result["methods"])
    judged = budget.judge(result, None, 0.03)
    w = pick(result, "json/strict", excluded=judged["excluded"])
    assert w["method"] == "sft" and w["by_cost"] and set(w["tied"]) == {"tell", "sft"}
    assert "sft-matched" not in w["reason"].split(";")[0]  # the excluded method is not among the tied


def test_a_lower_is_better_general_score_counts_a_rise_as_the_drop(tmp_path):
    key = "tellkit_pydoc/bits_per_byte"
    result = comparison(tmp_path, FORGETS)
    for c in result["cells"]:
        c["metrics"]["general_ood"] = general_result(FORGETS[c["method"]], key=key, higher=False)
    judged = budget.judge(result, key, 0.03)
    # sft-matched's rate of 1s fell 10 points: for a lower-is-better score that is an improvement of 0.10
    assert judged["higher_is_better"] is False and judged["excluded"] == []
    assert judged["methods"]["sft-matched"]["drop"] == pytest.approx(-0.10)
    assert judged["methods"]["tell"]["drop"] == pytest.approx(0.005)


def test_no_general_score_means_no_budget(tmp_path, config_file):
    result = comparison(tmp_path, FORGETS)
    for c in result["cells"]:
        del c["metrics"]["general_ood"]
    result["summary"] = summarise(result["cells"], result["methods"])
    assert budget.judge(result, None, 0.03) is None
    w = hand_over(result, load(config_file, ["compare.score=json/strict"]), tmp_path / "out")
    assert w["method"] == "sft-matched" and w["budget"] is None
    assert "vs base" not in verdict_table(w).splitlines()[0]


def test_points_for_rates_and_plain_numbers():
    assert budget.fmt_change(-0.06, "general_ood/tellkit_wordnet/acc") == "-6.0 points"
    assert budget.fmt_change(0.0123, "general_ood/tellkit_pydoc/bits_per_byte") == "+0.012"
    assert budget.fmt_change(math.nan, "general_ood/x/acc") == "–"


def test_a_general_score_the_suite_does_not_have_is_an_error(tmp_path):
    from tellkit.errors import ConfigError

    with pytest.raises(ConfigError, match=r"eval.general_score 'tellkit_wordnet/accuracy' is not a score .*"
                                          r"\['tellkit_wordnet/acc'\]"):
        budget.judge(comparison(tmp_path, FORGETS), "tellkit_wordnet/accuracy", 0.03)


def test_budget_and_general_score_keys_are_checked_at_load(config_file):
    from tellkit.errors import ConfigError

    with pytest.raises(ConfigError, match=r"compare.max_general_drop=-0.1: .*greater than or equal to 0"):
        load(config_file, ["compare.max_general_drop=-0.1"])
    with pytest.raises(ConfigError, match=r"eval.general_score='acc': .*pattern"):
        load(config_file, ["eval.general_score=acc"])
    assert load(config_file, ["compare.max_general_drop=null"]).compare.max_general_drop is None
