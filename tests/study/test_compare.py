import json

from tellkit.cli import main


def test_compare_runs_every_method_with_costs_and_matched_steps(config_file, capsys):
    rc = main(["compare", str(config_file), "compare.seeds=[0,1]",
               "eval.max_new_tokens=8", "compare.methods=[tell,sft,sft+anchor,sft-matched,general-only,base]"])
    assert rc == 0, capsys.readouterr().err
    out = config_file.parent / "run"
    result = json.loads((out / "comparison.json").read_text())
    methods = {c["method"] for c in result["cells"]}
    assert methods == {"tell", "sft", "sft+anchor", "sft-matched", "general-only", "base"}
    by = {(c["method"], c["seed"]): c["cost"] for c in result["cells"]}
    for seed in (0, 1):
        tell, matched, sft = by[("tell", seed)], by[("sft-matched", seed)], by[("sft", seed)]
        # same compute: one pass of the repeated task data holds TELL's tokens per epoch (within one
        # task example), so both train on the same tokens; the steps follow from the examples
        assert abs(matched["task_tokens"] - tell["train_tokens"]) <= 100
        assert abs(matched["train_tokens"] - tell["train_tokens"]) <= 100
        assert sft["optimizer_steps"] < tell["optimizer_steps"]
        # same task examples for every method of a seed (sft differs only by the anchor's tokens)
        assert by[("sft+anchor", seed)]["task_tokens"] == tell["task_tokens"] > sft["task_tokens"]
        assert matched["task_epochs"] > 1
    assert "tell vs sft" in result["differences"]
    report = (out / "report.md").read_text()
    assert "compute-matched" in report and "sft-matched" in report and "## Outcome" in report
    assert "data:image/png;base64," in (out / "report.html").read_text()
    # the methods' task-loss curves, over steps and over tokens, on one figure
    assert (out / "task_loss.png").exists() and "![task loss](task_loss.png)" in report
    # the report can be re-rendered from comparison.json alone
    (out / "report.md").unlink()
    assert main(["report", str(out)]) == 0 and "## Outcome" in (out / "report.md").read_text()


def test_compare_names_the_winner_and_links_best(config_file, capsys):
    import yaml

    from tests.helpers import general_rows, write_jsonl

    write_jsonl(config_file.parent / "heldout.jsonl", general_rows(12, seed=7))
    cfg = yaml.safe_load(config_file.read_text())
    cfg["general"]["heldout_path"] = "heldout.jsonl"
    config_file.write_text(yaml.safe_dump(cfg))
    # The tiny random model never writes JSON, so the winner is picked by general loss: TELL trains on
    # general data and lowers it; base is the reference.
    rc = main(["compare", str(config_file), "compare.methods=[tell,base]", "compare.seeds=[0]",
               "train.max_steps=2", "eval.max_new_tokens=4", "eval.metrics=[json,general]",
               "compare.score=general/loss"])
    printed = capsys.readouterr().out
    assert rc == 0
    out = config_file.parent / "run"
    result = json.loads((out / "comparison.json").read_text())
    winner = result["winner"]
    assert winner["method"] == "tell" and winner["score"] == "general/loss"
    best = out / "best"
    assert best.is_symlink() and best.resolve() == (out / "tell-s0").resolve()
    assert (best / "adapter" / "adapter_config.json").exists() and (best / "run.json").exists()
    assert (best / "config.yaml").exists() and (best / "eval" / "scores.json").exists()
    report = (out / "report.md").read_text().splitlines()
    # first what each method buys and costs against base (here the held-out loss: no general_tasks), then the winner
    assert report[2].startswith("**What each method buys and what it costs**") and report[4].startswith("- **tell**")
    assert "held-out general loss (same source as the general mix)" in report[4]
    assert report[6] == "General ability out of distribution was not measured (eval.general_tasks is empty)."
    assert report[8].startswith("**Winner: `tell`**") and any("tellkit predict" in line for line in report[:16])
    assert (out / "retention.png").exists()
    assert "*tell" in printed and f"best/: {best}" in printed and "tellkit export" in printed
    # the scores' intervals are named and stay inside [0, 1] for the proportions
    strict = result["summary"]["tell"]["scores"]["json/strict"]
    assert strict["interval"] == "bootstrap over test items and seeds" and 0 <= strict["ci_low"] <= strict["ci_high"] <= 1


def test_compare_builds_each_cells_mixture_once(config_file, capsys, monkeypatch):
    """The plan checks every cell by building its mixture, and the cell then trains on that one: validation,
    the plan and training no longer build a method's mixture three times."""
    import tellkit.mix.prepare as prepare

    built, real = [], prepare.build_mixture

    def counted(task, general, mix, **kwargs):
        built.append((mix.method, mix.seed))
        return real(task, general, mix, **kwargs)

    monkeypatch.setattr(prepare, "build_mixture", counted)
    rc = main(["compare", str(config_file), "compare.seeds=[0,1]", "compare.methods=[tell,sft,sft-matched,base]",
               "train.max_steps=2", "eval.max_new_tokens=2", "eval.limit=2"])
    assert rc == 0, capsys.readouterr().err
    assert sorted(built) == [(m, s) for m in ("sft", "sft-matched", "tell") for s in (0, 1)]  # each cell once
