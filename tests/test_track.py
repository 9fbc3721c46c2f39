import json

import pytest

import tellkit.api as api
from tellkit import track
from tellkit.cli import main
from tellkit.evaluate.runner import evaluate_run
from tellkit.track import tracking_args


@pytest.fixture
def clean_env(monkeypatch):
    """tracking_args sets these per run; put them back (unset) after the test."""
    for key in ("TENSORBOARD_LOGGING_DIR", "MLFLOW_TAGS", "WANDB_TAGS"):
        monkeypatch.setenv(key, "")
        monkeypatch.delenv(key)


def test_no_tracker_by_default(config_file, tmp_path):
    cfg = api.load(config_file)
    assert cfg.train.report_to == []
    assert tracking_args(cfg, tmp_path / "run") == {"report_to": "none"}


def test_tracking_is_not_part_of_what_is_trained(config_file):
    from tellkit.runs.rundir import training_hash

    path = config_file
    # a finished run rerun with a tracker added is re-evaluated, not retrained
    assert training_hash(api.load(path)) == training_hash(api.load(path, ["train.report_to=[tensorboard]"]))


def test_bad_tracker_names_the_key(config_file):
    from tellkit.errors import ConfigError

    with pytest.raises(ConfigError, match="train.report_to"):
        api.load(config_file, ["train.report_to=[neptune]"])


def test_missing_tracker_package_fails_before_training(config_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(track.PACKAGES, "wandb", "tellkit_no_such_tracker")
    cfg = config_file
    assert main(["train", str(cfg), "train.report_to=[wandb]"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: train.report_to=['wandb'] needs `pip install tellkit_no_such_tracker`")
    assert "\n" not in err and not (tmp_path / "run").exists()


def test_tensorboard_gets_losses_and_final_scores(config_file, clean_env):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = api.load(config_file, ["train.max_steps=3", "train.report_to=[tensorboard]"])
    run = api.train(cfg)
    evaluate_run(run, limit=2)

    scalars = set()
    for events in (run / "tensorboard").rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events))
        acc.Reload()
        scalars |= set(acc.Tags()["scalars"])
    assert "train/loss" in scalars
    assert any(t.startswith("final/json/") for t in scalars)  # evaluation's scores are in the run's log


def test_compare_cells_are_separate_mlflow_runs(config_file, tmp_path, monkeypatch, clean_env, capsys):
    mlflow = pytest.importorskip("mlflow")
    store = (tmp_path / "mlruns").as_uri()  # a local file store: nothing leaves the machine
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps its file store behind this switch
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    mlflow.set_tracking_uri(store)
    assert main(["compare", str(config_file), "train.max_steps=2", "compare.methods=[tell,sft]", "compare.seeds=[0]",
                 "eval.max_new_tokens=4", "train.report_to=[mlflow]"]) == 0, capsys.readouterr().err

    runs = {r.data.tags["tellkit.method"]: r for r in mlflow.search_runs(search_all_experiments=True,
                                                                          output_format="list")}
    assert sorted(runs) == ["sft", "tell"]  # one MLflow run per trained cell
    cells = {c["method"]: c for c in json.loads((tmp_path / "run" / "comparison.json").read_text())["cells"]}
    for method, r in runs.items():
        tags = r.data.tags
        assert tags["tellkit.seed"] == "0" and tags["tellkit.scale"] == "all"
        assert tags["tellkit.ratio"] == f"{cells[method]['ratio']:g}"
        assert tags["tellkit.run_dir"] == str((tmp_path / "run" / f"{method}-s0").resolve())
        assert r.info.run_name == f"{method}-s0-{method}-r{cells[method]['ratio']:g}-s0"
        assert "loss" in r.data.metrics or "train_loss" in r.data.metrics
        final = {k: v for k, v in r.data.metrics.items() if k.startswith("final/")}
        strict = cells[method]["metrics"]["json"]["scores"]["strict"]["value"]
        assert final["final/json/strict"] == pytest.approx(strict)  # the cell's own final score
