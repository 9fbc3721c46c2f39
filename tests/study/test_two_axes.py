"""Every verdict on two axes, end to end on the tiny model: compare and sweep measure general ability out of
distribution with lm-eval in every cell and in base, report both axes first and draw the Pareto plot."""

import json

import pytest

from tellkit.cli import main

pytest.importorskip("lm_eval")

OOD = ["eval.general_tasks=[tellkit_wordnet,tellkit_pydoc]", "eval.general_limit=3"]
FAST = ["compare.seeds=[0]", "train.max_steps=2", "eval.max_new_tokens=4"]


def test_compare_adds_general_ability_to_finished_cells_and_reports_both_axes(config_file, capsys):
    out = config_file.parent / "run"
    # a compare finished before general ability was measured (the fixture has eval.general_tasks: [])
    assert main(["compare", str(config_file), "compare.methods=[tell,sft]", *FAST]) == 0, capsys.readouterr().err
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*-s0/adapter/adapter_model.safetensors")}
    assert len(stamps) == 2 and not (out / "base").exists()  # no general axis, no base asked for

    assert main(["compare", str(config_file), "compare.methods=[tell,sft]", *FAST, *OOD]) == 0, \
        capsys.readouterr().err
    printed = capsys.readouterr().out
    # nothing retrained: the finished cells' evaluations gained the general_ood metric only
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    result = json.loads((out / "comparison.json").read_text())
    assert result["methods"] == ["tell", "sft", "base"]  # base joins as the reference of general ability
    for c in result["cells"]:
        ood = c["metrics"]["general_ood"]
        assert ood["tasks"] == ["tellkit_wordnet", "tellkit_pydoc"]
        assert {k: len(v) for k, v in ood["items"].items()} == {"tellkit_wordnet/acc": 3, "tellkit_wordnet/acc_norm": 3,
                                                                "tellkit_pydoc/bits_per_byte": 3}
    winner = result["winner"]
    assert winner["budget"]["key"] == "general_ood/tellkit_wordnet/acc" and winner["budget"]["budget"] == 0.03
    assert set(winner["budget"]["methods"]) == {"tell", "sft", "base"}
    assert "tellkit_wordnet/acc vs base" in printed and "tellkit_pydoc/bits_per_byte vs base" in printed

    report = (out / "report.md").read_text()
    head = report.splitlines()[:8]
    assert head[2].startswith("**What each method buys and what it costs**")
    tell = next(line for line in head if line.startswith("- **tell**"))
    assert "general ability out of distribution:" in tell and "tellkit_wordnet/acc" in tell
    assert "tellkit_pydoc/bits_per_byte" in tell
    assert "## General ability out of distribution" in report and "![pareto](pareto.png)" in report
    assert (out / "pareto.png").stat().st_size > 1000
    assert "Forgetting budget (`compare.max_general_drop`)" in report

    # another general suite (here: another limit) is measured again, still without retraining
    assert main(["compare", str(config_file), "compare.methods=[tell,sft]", *FAST, *OOD[:1],
                 "eval.general_limit=2"]) == 0, capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    cells = json.loads((out / "comparison.json").read_text())["cells"]
    assert {c["metrics"]["general_ood"]["n"] for c in cells} == {2}


def test_sweep_reports_general_ability_per_ratio_with_a_pareto_plot(config_file, capsys):
    args = ["sweep", str(config_file), "sweep.ratios=[0,2]", "sweep.task_tokens=[150]", "sweep.seeds=[0]",
            "sweep.methods=[tell]", "eval.max_new_tokens=4", "train.max_steps=2", *OOD]
    assert main(args) == 0, capsys.readouterr().err
    out = config_file.parent / "run"
    general = json.loads((out / "sweep.json").read_text())["summary"]["general"]
    assert general["key"] == "general_ood/tellkit_wordnet/acc"
    points = {(p["method"], p["ratio"]): p for p in general["points"]}
    assert set(points) == {("tell", 0.0), ("tell", 2.0), ("base", 0.0)}  # base evaluated as the reference
    change = points[("tell", 2.0)]["changes"]["general_ood/tellkit_pydoc/bits_per_byte"]
    assert change["interval"] == "paired bootstrap over test items and seeds"
    report = (out / "report.md").read_text()
    assert report.splitlines()[2].startswith("**What each method buys and what it costs**")
    assert "## General ability out of distribution" in report and (out / "pareto_t150.png").exists()
