"""The plan of a compare or sweep (tellkit/study/execute/plan.py): every cell with its dependencies, data
budget, memory estimate and mixture, decided before anything trains; a changed grid; `--only`."""

import pytest

from tellkit.api import load
from tellkit.errors import ConfigError, TellkitError
from tellkit.mix.prepare import prepare
from tellkit.study.compare import plan_compare
from tellkit.study.execute.plan import cell_config, load_plan, select, store

COMPARE = ["compare.seeds=[0,1]", "compare.methods=[tell,sft,sft-matched,base]"]


@pytest.fixture
def plan(config_file):
    cfg = load(config_file, COMPARE)
    return plan_compare(cfg, config_file.parent / "run", prepare(cfg))


def test_cell_config_changes_the_cell_not_the_users_config(config_file, tmp_path):
    cfg = load(config_file)
    c = cell_config(cfg, tmp_path / "cell", "sft", 7, ratio=2.0, token_budget=100, max_steps=3)
    assert (c.mix.method, c.mix.seed, c.train.seed, c.mix.ratio, c.task.token_budget, c.train.max_steps) == \
        ("sft", 7, 7, 2.0, 100, 3)
    assert c.output.dir == str(tmp_path / "cell")
    assert (cfg.mix.method, cfg.mix.seed, cfg.mix.ratio, cfg.train.max_steps) == ("tell", 0, 3.0, None)


def test_every_trained_cell_is_checked_and_keeps_the_mixture_it_will_train_on(plan):
    assert [c.name for c in plan.cells] == ["tell-s0", "sft-s0", "sft-matched-s0", "tell-s1", "sft-s1",
                                            "sft-matched-s1", "base"]
    matched = plan.cell("sft-matched-s1")  # its data follows from its tell cell's run: nothing to build yet
    assert matched.depends_on == "tell-s1" and matched.budget == {"same_compute_as": "tell-s1"}
    assert set(plan.mixtures) == {"tell-s0", "sft-s0", "tell-s1", "sft-s1"}
    tell, sft = plan.cell("tell-s0").budget, plan.cell("sft-s0").budget
    assert tell["general_tokens"] > 0 and sft["general_tokens"] == 0
    assert tell["data_sha256"] != plan.cell("tell-s1").budget["data_sha256"]  # the seed shuffles
    # estimates: sft-matched gets its scale's largest, base (evaluation only) the smallest
    memory = plan.memory_gib
    assert memory["sft-matched-s0"] == max(memory[n] for n in ("tell-s0", "sft-s0", "tell-s1", "sft-s1"))
    assert memory["base"] == min(memory.values())


def test_a_stored_plan_reads_back_the_same_and_another_grid_needs_replan(plan, config_file):
    store(plan)
    again = load_plan(plan.folder)
    assert again.to_json() == plan.to_json() and again.identity() == plan.identity()
    assert again.mixtures == {}  # in memory only: a worker process builds its cell's own
    cfg = load(config_file, ["compare.seeds=[0]", "compare.methods=[tell,sft]"])
    other = plan_compare(cfg, plan.folder, prepare(cfg))
    with pytest.raises(TellkitError, match="--replan"):
        store(other)
    store(other, replan=True)
    assert load_plan(plan.folder).identity() == other.identity()


def test_only_picks_cells_with_the_cells_they_depend_on(plan):
    assert select(plan, None) == [c.name for c in plan.cells]
    assert select(plan, ["method=sft-matched", "seed=1"]) == ["tell-s1", "sft-matched-s1"]
    assert select(plan, ["seed=0"]) == ["tell-s0", "sft-s0", "sft-matched-s0", "base"]  # base has no seed: kept
    with pytest.raises(ConfigError, match="KEY=V1,V2"):
        select(plan, ["colour=red"])
    with pytest.raises(ConfigError, match="takes int"):
        select(plan, ["seed=x"])
    with pytest.raises(ConfigError, match="matches no cell"):
        select(plan, ["method=general-only"])
