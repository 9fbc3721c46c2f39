import json

import pytest

from tellkit.api import load
from tellkit.cli import main
from tellkit.errors import ConfigError
from tellkit.study.sweep import (
    cell_name,
    curves,
    grid,
    over_budget,
    primary_score,
)


def test_grid_has_no_duplicate_cells_and_ratio_free_methods_run_once(config_file):
    cfg = load(config_file, ["sweep.ratios=[0,1,3]", "sweep.task_tokens=[200,400]", "sweep.seeds=[0,1]",
                             "sweep.methods=[sft,tell,sft-matched]"])
    cells = grid(cfg)
    names = [cell_name(c) for c in cells]
    assert len(names) == len(set(names))
    assert sum(c["method"] == "sft" for c in cells) == 2 * 2  # scales x seeds, not x ratios
    assert sum(c["method"] == "tell" for c in cells) == 3 * 2 * 2
    # each sft-matched cell comes after the tell cell it copies
    for i, c in enumerate(cells):
        if c["method"] == "sft-matched":
            twin = {**c, "method": "tell"}
            assert twin in cells[:i]


def test_budget_leaves_out_large_cells_and_general_only_runs_once_per_seed_at_its_largest_volume(config_file):
    cfg = load(config_file, ["sweep.ratios=[0,3,30]", "sweep.task_tokens=[1000,10000]", "sweep.seeds=[0,1]",
                             "sweep.methods=[tell,sft,general-only,base]", "sweep.max_train_tokens=40000",
                             "train.epochs=1"])
    names = [cell_name(c) for c in grid(cfg)]
    # 10k tokens at ratio 30 is 310k training tokens: over the budget; ratio 3 (40k) just fits
    assert "tell-t10000-r30-s0" not in names and "tell-t10000-r3-s0" in names and "tell-t1000-r30-s0" in names
    assert "tell-t10000-r30-s0" in {cell_name(c) for c in over_budget(cfg)}
    # general-only: one cell per seed, at the largest general volume that fits (1k x 30 and 10k x 3 tie at 30k;
    # goes to the smaller scale), never at ratio 0; base is evaluated outside the grid
    general = [n for n in names if n.startswith("general-only")]
    assert general == ["general-only-t1000-r30-s0", "general-only-t1000-r30-s1"]
    assert not any(n.startswith("base") for n in names)
    assert names.index("tell-t10000-r3-s0") < names.index("tell-t1000-r0-s1")  # seeds outermost


def test_primary_score_is_the_headline_unless_the_user_picks_one():
    rows = [{"method": "tell", "label/accuracy": 0.6, "json/strict": 0.9}]
    assert primary_score(rows) == "label/accuracy"
    assert primary_score(rows, "json/strict") == "json/strict"
    with pytest.raises(ConfigError, match="json/schema.*choose one of"):
        primary_score(rows, "json/schema")


def test_sweep_score_from_a_metric_not_evaluated_is_a_one_line_error(config_file, capsys):
    assert main(["sweep", str(config_file), "sweep.score=label/accuracy"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sweep.score" in err[0] and "eval.metrics" in err[0]


def _cell(method, ratio, seed, preds, task_tokens=100):
    from tellkit.metrics import compute

    refs = ['{"a": 1}'] * len(preds)
    return {"method": method, "task_tokens": task_tokens, "ratio": ratio, "seed": seed,
            "metrics": compute(["json"], preds, refs)}


def test_curve_points_pool_items_and_seeds_and_stay_inside_0_1():
    right, wrong = '{"a": 1}', "x"
    # tell at ratio 2: seeds score 0, 0 and 1 on every item; a Student-t band over the three seed
    # means would be 1/3 +- 1.43, far outside [0, 1]
    results = [_cell("tell", 2.0, s, [p] * 6) for s, p in enumerate((wrong, wrong, right))]
    results += [_cell("tell", 0.0, s, [right] * 5 + [wrong]) for s in range(3)]
    results += [_cell("sft", 0.0, s, [right, wrong] * 3) for s in range(3)]
    c = curves(results, "json/strict")
    assert [p["x"] for p in c["tell"][100]] == [0.0, 2.0]
    point = c["tell"][100][1]
    assert point["mean"] == pytest.approx(1 / 3) and point["n"] == 3
    assert point["interval"] == "bootstrap over test items and seeds"
    assert 0.0 <= point["ci_low"] < point["mean"] < point["ci_high"] <= 1.0
    # every seed agrees item by item on tell at ratio 0: only items vary
    flat = c["tell"][100][0]
    assert flat["mean"] == pytest.approx(5 / 6) and 0.0 <= flat["ci_low"] < flat["ci_high"] <= 1.0
    assert c["sft"][100][0]["mean"] == pytest.approx(0.5)
    # results without per-item rows (written before they were kept): Wilson, still inside [0, 1]
    for r in results:
        del r["metrics"]["json"]["items"]
    old = curves(results, "json/strict")["tell"][100][1]
    assert old["interval"] == "Wilson over items x seeds" and 0.0 < old["ci_low"] < old["ci_high"] < 1.0


def test_sweep_runs_resumes_and_never_reruns_a_finished_cell(config_file, capsys):
    args = ["sweep", str(config_file), "sweep.ratios=[0,2]", "sweep.task_tokens=[150,300]", "sweep.seeds=[0]",
            "sweep.methods=[tell,sft]", "eval.max_new_tokens=4", "train.max_steps=2"]
    assert main(args) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    out = config_file.parent / "run"
    summary = json.loads((out / "sweep.json").read_text())["summary"]
    assert summary["cells"] == 6 and len(summary["multiplier"]) == 2
    assert {m["interval_from"] for m in summary["multiplier"]} == {"items x seeds, TELL and SFT"}
    assert printed.count("150 task tokens: TELL") == 1 and "## Data-efficiency multiplier" in (out / "report.md").read_text()
    assert (out / "sweep.csv").read_text().count("\n") == 7
    assert (out / "ratio_curve_t150.png").exists() and (out / "report.html").exists()
    assert (out / "task_loss_t150.png").exists() and (out / "task_loss_t300.png").exists()  # tell vs sft, per scale
    points = [p for by_t in summary["curves"].values() for pts in by_t.values() for p in pts]
    assert {p["interval"] for p in points} == {"bootstrap over test items and seeds"}
    assert all(0.0 <= p["ci_low"] <= p["ci_high"] <= 1.0 for p in points)
    assert "Bands and intervals: 95% bootstrap over test items and seeds." in (out / "report.md").read_text()
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("cells/*/adapter/adapter_model.safetensors")}
    assert len(stamps) == 6
    # an interrupted sweep: delete one cell's result; rerunning redoes only that cell
    victim = out / "cells" / "tell-t150-r2-s0"
    (victim / "run.json").write_text(json.dumps({**json.loads((victim / "run.json").read_text()), "status": "failed"}))
    assert main(args) == 0
    after = {p: p.stat().st_mtime_ns for p in out.glob("cells/*/adapter/adapter_model.safetensors")}
    changed = [p.parent.parent.name for p in stamps if after[p] != stamps[p]]
    assert changed == ["tell-t150-r2-s0"]


def test_sweep_reuses_tell_at_ratio_0_for_sft_anchor_and_evaluates_base_once(config_file, capsys):
    args = ["sweep", str(config_file), "sweep.ratios=[2,0]", "sweep.task_tokens=[150]", "sweep.seeds=[0,1]",
            "sweep.methods=[sft+anchor,tell,base]", "eval.max_new_tokens=4", "train.max_steps=2",
            "sweep.max_train_tokens=400"]
    assert main(args) == 0, capsys.readouterr().err
    out = config_file.parent / "run"
    rows = json.loads((out / "sweep.json").read_text())["rows"]
    trained = sorted(p.name for p in (out / "cells").iterdir())
    assert trained == ["tell-t150-r0-s0", "tell-t150-r0-s1"]  # ratio 2 (450 tokens) is over the budget
    by = {(r["method"], r["seed"]): r for r in rows}
    assert by[("sft+anchor", 0)]["train_tokens"] == by[("tell", 0)]["train_tokens"] > 0
    assert [r["method"] for r in rows].count("base") == 2 and (out / "base" / "scores.json").exists()
    report = (out / "report.md").read_text()
    assert "tell-t150-r2-s0" in report
    # the plan's cells (tell and sft+anchor per seed, base once), as "N of M planned cells" counts them; not
    # the result rows, where base's one evaluation is a row per seed
    assert "5 cells, primary score" in report


def test_report_draws_no_ratio_curve_where_only_sft_ran(config_file, capsys, monkeypatch):
    from tellkit.report import sweep_report

    drawn = []
    real = sweep_report.plot_ratio_curves
    monkeypatch.setattr(sweep_report, "plot_ratio_curves", lambda series, *a: drawn.append(series) or real(series, *a))
    args = ["sweep", str(config_file), "sweep.ratios=[0,2]", "sweep.task_tokens=[150,300]", "sweep.seeds=[0]",
            "sweep.methods=[tell,sft,sft-matched]", "sweep.mixed_task_tokens=[150]", "eval.max_new_tokens=4",
            "train.max_steps=2"]
    out = config_file.parent / "run"
    # a partial sweep (every ratio-0 cell, then tell at ratio 2): sft is ratio-free and drawn flat over the
    # ratios that ran; sft-matched has one point so far and stays one point, not a flat line that looks measured
    assert main([*args, "--only", "ratio=0"]) == 0, capsys.readouterr().err
    assert main([*args, "--only", "method=tell"]) == 0, capsys.readouterr().err
    assert main(["report", str(out)]) == 0
    series = drawn[-1]
    assert [p["x"] for p in series["sft"]] == [p["x"] for p in series["tell"]] == [0, 2]
    assert [p["x"] for p in series["sft-matched"]] == [0]
    assert main(args) == 0, capsys.readouterr().err
    report = (out / "report.md").read_text()
    assert (out / "ratio_curve_t150.png").exists() and not (out / "ratio_curve_t300.png").exists()
    assert ("At 300 task tokens only the ratio-free methods ran (`sweep.mixed_task_tokens: [150]`), so there is "
            "no curve over the ratio.") in report
    row = next(line for line in report.splitlines() if line.startswith("| 150 |"))
    assert row.split(" | ")[1] in {"0", "2"}  # the ratio as the sweep spelled it, not 2.000


def _no_mix_config(config_file, n_task=40):
    """The issue's config: no `mix` section (so mix.ratio keeps its default, 100), 40 task examples."""
    import yaml

    from tests.helpers import task_rows, write_jsonl

    write_jsonl(config_file.parent / "task.jsonl", task_rows(n_task))
    cfg = yaml.safe_load(config_file.read_text())
    del cfg["mix"]
    config_file.write_text(yaml.safe_dump(cfg))
    return config_file


def test_sweep_validates_its_own_cells_not_mix_ratio(config_file, capsys):
    _no_mix_config(config_file)
    args = ["sweep", str(config_file), "sweep.ratios=[0,3]", "sweep.task_tokens=[200]", "sweep.methods=[tell,sft]",
            "sweep.seeds=[0,1]", "train.max_steps=1", "eval.max_new_tokens=2", "eval.limit=2"]
    assert main(args) == 0, capsys.readouterr().err
    rows = json.loads((config_file.parent / "run" / "sweep.json").read_text())["rows"]
    assert sorted({(r["method"], r["ratio"]) for r in rows}) == [("sft", 0.0), ("tell", 0.0), ("tell", 3.0)]


def test_an_infeasible_cell_is_named_with_the_key_to_change_and_a_left_out_one_is_not_checked(config_file, capsys):
    from tellkit.mix.prepare import prepare
    from tellkit.study.sweep import plan_sweep
    from tests.helpers import user_error

    _no_mix_config(config_file)
    grid = ["sweep.ratios=[0,3,1000]", "sweep.task_tokens=[200]", "sweep.methods=[tell,sft]", "sweep.seeds=[0]"]
    line = user_error(["sweep", str(config_file), *grid], capsys, "sweep cell tell-t200-r1000-s0", "general tokens",
                      "sweep.ratios")
    assert "mix.ratio" not in line and not (config_file.parent / "run" / "cells").exists()  # nothing trained
    # with a budget that leaves that cell out, it is not validated at all, and the plan records why
    cfg = load(config_file, [*grid, "sweep.max_train_tokens=5000"])
    plan = plan_sweep(cfg, config_file.parent / "run", prepare(cfg))
    assert [c["name"] for c in plan.left_out] == ["tell-t200-r1000-s0"]
    assert {c.name for c in plan.cells} == {"tell-t200-r0-s0", "tell-t200-r3-s0", "sft-t200-r0-s0"}


def test_mixed_task_tokens_runs_the_ratio_methods_at_those_scales_only(config_file):
    cfg = load(config_file, ["sweep.ratios=[0,10]", "sweep.task_tokens=[1000,3000,10000]", "sweep.seeds=[0]",
                             "sweep.methods=[tell,sft,sft-matched,general-only]", "sweep.mixed_task_tokens=[1000]"])
    names = {cell_name(c) for c in grid(cfg)}
    assert {n for n in names if n.startswith("sft-t")} == {"sft-t1000-r0-s0", "sft-t3000-r0-s0", "sft-t10000-r0-s0"}
    assert {n for n in names if not n.startswith("sft-t")} == {
        "tell-t1000-r0-s0", "tell-t1000-r10-s0", "sft-matched-t1000-r0-s0", "sft-matched-t1000-r10-s0",
        "general-only-t1000-r10-s0"}
    with pytest.raises(ConfigError, match=r"sweep.mixed_task_tokens \[2000\] must be among sweep.task_tokens"):
        load(config_file, ["sweep.task_tokens=[1000,3000]", "sweep.mixed_task_tokens=[1000,2000]"])
