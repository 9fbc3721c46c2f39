from tellkit.cli import main


def test_run_report_names_its_interval(config_file):
    assert main(["run", str(config_file), "train.max_steps=2", "eval.max_new_tokens=4"]) == 0
    report = (config_file.parent / "run" / "report.md").read_text()
    assert "95% intervals: percentile bootstrap over the test items" in report
