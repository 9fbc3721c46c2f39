"""One cell (tellkit/study/execute/cell.py): sft-matched's compute copied from its tell cell, the cost a
cell reports, and a planned cell run once, logged, and trained on the mixture its plan built."""

import pytest

from tellkit.api import load
from tellkit.errors import TellkitError
from tellkit.mix.prepare import prepare
from tellkit.study.compare import plan_compare
from tellkit.study.execute import cell
from tellkit.study.execute.cell import (
    cost,
    events,
    is_done,
    matched_cell,
    result,
    run_planned,
)

TELL_CELL = {"seed": 1, "cost": {"train_tokens": 3000, "optimizer_steps": 12}}


def test_matched_cell_copies_the_tell_cells_compute(config_file, tmp_path):
    c, match = matched_cell(load(config_file), tmp_path, "sft-matched", TELL_CELL)  # train.epochs=1
    assert (c.mix.method, c.mix.seed, c.train.seed, c.train.max_steps, match) == ("sft-matched", 1, 1, None, 3000)
    assert matched_cell(load(config_file, ["train.epochs=2"]), tmp_path, "sft-matched", TELL_CELL)[1] == 1500
    c, match = matched_cell(load(config_file, ["train.max_steps=5"]), tmp_path, "sft-matched", TELL_CELL)
    assert (c.train.max_steps, match) == (12, 3000)  # tell's steps, over one pass of tell's tokens


def test_cost_counts_unique_task_tokens_and_the_passes_over_them():
    state = {"mixture": {"task_tokens_reference": 400, "task_repeats": 2, "task": {"tokens": 800},
                         "general": {"tokens": 1200}, "total": {"tokens": 2000}},
             "train": {"train_tokens": 4000, "optimizer_steps": 10, "wall_seconds": 5.0, "tokens_per_second": 800.0}}
    c = cost(state)
    assert (c["task_tokens"], c["unique_task_tokens"], c["general_tokens"]) == (800, 200, 1200)
    assert c["task_epochs"] == 8.0  # 800 task tokens a pass, 2 passes over the mixture, 200 of them unique


@pytest.fixture
def planned(config_file):
    cfg = load(config_file, ["compare.seeds=[0]", "compare.methods=[sft,base]", "train.max_steps=2",
                             "eval.limit=2", "eval.max_new_tokens=2"])
    prepared = prepare(cfg)
    return plan_compare(cfg, config_file.parent / "run", prepared), prepared


def test_a_planned_cell_runs_once_on_its_plans_mixture_and_is_logged(planned):
    plan, prepared = planned
    mixture = plan.mixtures["sft-s0"]
    assert not is_done(plan, plan.cell("sft-s0"))
    assert run_planned(plan, "sft-s0", prepared) is True
    assert "sft-s0" not in plan.mixtures  # handed over to the cell's training
    assert is_done(plan, plan.cell("sft-s0")) and run_planned(plan, "sft-s0", prepared) is False
    assert [e["event"] for e in events(plan, plan.cell("sft-s0"))] == ["start", "done"]
    r = result(plan, plan.cell("sft-s0"))
    assert r["method"] == "sft" and r["cost"]["optimizer_steps"] == 2
    assert r["fingerprint"] == mixture.report["fingerprint"]  # training wrote the plan's mixture object
    assert run_planned(plan, "base", prepared) is True  # the untrained model: evaluated once
    base = result(plan, plan.cell("base"))
    assert base["method"] == "base" and base["cost"]["train_tokens"] == 0 and base["samples"]


def test_a_failing_cell_is_logged_as_failed_and_not_done(planned, monkeypatch):
    plan, prepared = planned

    def fails(*args, **kwargs):
        raise TellkitError("no room")

    monkeypatch.setattr(cell, "train", fails)
    with pytest.raises(TellkitError, match="no room"):
        run_planned(plan, "sft-s0", prepared)
    assert [(e["event"], e.get("reason")) for e in events(plan, plan.cell("sft-s0"))] == \
        [("start", None), ("failed", "no room")]
    assert not is_done(plan, plan.cell("sft-s0"))
