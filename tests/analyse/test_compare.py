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
        # same compute: the same optimizer steps, and one pass of the repeated task data holds
        # TELL's tokens (within one task example)
        assert tell["optimizer_steps"] == matched["optimizer_steps"]
        assert abs(matched["task_tokens"] - tell["train_tokens"]) <= 100
        assert sft["optimizer_steps"] < tell["optimizer_steps"]
        # same task examples for every method of a seed (sft differs only by the anchor's tokens)
        assert by[("sft+anchor", seed)]["task_tokens"] == tell["task_tokens"] > sft["task_tokens"]
        assert matched["task_epochs"] > 1
    assert "tell vs sft" in result["differences"]
    report = (out / "report.md").read_text()
    assert "compute-matched" in report and "sft-matched" in report and "## Outcome" in report
    assert "data:image/png;base64," in (out / "report.html").read_text()
    # the report can be re-rendered from comparison.json alone
    (out / "report.md").unlink()
    assert main(["report", str(out)]) == 0 and "## Outcome" in (out / "report.md").read_text()
