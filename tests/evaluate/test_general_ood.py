"""General ability out of distribution: lm-evaluation-harness in-process on the tiny model, offline, through
tellkit's shipped suite and a user's own task YAML; its per-document rows give the scores and the paired
intervals."""

import json
import math

import numpy as np
import pytest

from tellkit.api import load
from tellkit.errors import ConfigError
from tellkit.evaluate.general_suite import DEFAULT_TASKS, SUITE_DIR
from tellkit.metrics import general_ood, pooled
from tellkit.models import load_model_and_tokenizer
from tellkit.train.precision import score_bf16

pytest.importorskip("lm_eval")


@pytest.fixture(scope="module")
def tiny(tiny_model):
    model, tok = load_model_and_tokenizer(tiny_model)
    return model.eval(), tok


@pytest.fixture(scope="module")
def default_suite(tiny, tmp_path_factory):
    """The shipped suite's first 6 documents per task (one lm-eval run shared by the tests below)."""
    from tellkit.config import Config
    from tellkit.evaluate.harness import general_ood as run

    cfg = Config.model_validate({"task": {"path": "t.jsonl"}, "mix": {"method": "sft"},
                                 "eval": {"general_limit": 6, "batch_size": 4}})
    return run(cfg, *tiny)


def test_the_default_suite_runs_offline_and_keeps_lm_evals_rows(default_suite, monkeypatch):
    r = default_suite
    assert list(DEFAULT_TASKS) == r["tasks"] == ["tellkit_wordnet", "tellkit_pydoc"]
    assert set(r["scores"]) == {"tellkit_wordnet/acc", "tellkit_wordnet/acc_norm", "tellkit_pydoc/bits_per_byte"}
    assert r["general_score"] == "tellkit_wordnet/acc" and r["n"] == 6 and r["limit"] == 6
    assert r["suite"] == list(DEFAULT_TASKS)  # what a finished cell is checked against before reuse
    assert r["bf16"] == score_bf16("auto", "auto")  # scored in the precision training uses here
    # the directions are lm-eval's task definitions, not a table of ours
    assert r["higher_is_better"] == {"tellkit_wordnet/acc": True, "tellkit_wordnet/acc_norm": True,
                                     "tellkit_pydoc/bits_per_byte": False}
    acc = r["items"]["tellkit_wordnet/acc"]
    assert len(acc) == 6 and set(acc) <= {0.0, 1.0}
    assert r["scores"]["tellkit_wordnet/acc"]["value"] == pytest.approx(np.mean(acc))
    # bits per byte: one (loglikelihood, bytes) row per docstring, aggregated as lm-eval does
    rows = np.array(r["items"]["tellkit_pydoc/bits_per_byte"])
    docs = [json.loads(line) for line in (SUITE_DIR / "pydoc.jsonl").read_text().splitlines()[:6]]
    assert rows.shape == (6, 2) and (rows[:, 0] < 0).all()
    assert rows[:, 1].tolist() == [len(d["text"].encode()) for d in docs]
    bpb = r["scores"]["tellkit_pydoc/bits_per_byte"]
    assert bpb["value"] == pytest.approx(-rows[:, 0].sum() / rows[:, 1].sum() / math.log(2))
    assert bpb["ci_low"] < bpb["value"] < bpb["ci_high"]
    json.dumps(r)  # scores.json-ready


def test_rows_pool_over_seeds_and_pair_by_item(default_suite):
    key = "general_ood/tellkit_pydoc/bits_per_byte"
    r = default_suite
    worse = json.loads(json.dumps(r))
    worse["items"]["tellkit_pydoc/bits_per_byte"] = [[ll * 1.1, n] for ll, n in r["items"]["tellkit_pydoc/bits_per_byte"]]
    worse["scores"]["tellkit_pydoc/bits_per_byte"]["value"] *= 1.1
    pooled_score = pooled.over_seeds(key, [{"general_ood": r}, {"general_ood": worse}])
    assert pooled_score["interval"] == "bootstrap over test items and seeds"
    d = pooled.difference(key, [{"general_ood": worse}], [{"general_ood": r}])
    assert d["mean_diff"] == pytest.approx(0.1 * r["scores"]["tellkit_pydoc/bits_per_byte"]["value"])
    # every document 10% less likely: paired by document, the rise is clear and reads as worse (lower is better)
    assert d["interval"] == "paired bootstrap over test items and seeds" and d["ci_low"] > 0
    assert d["verdict"] == "B better"


def test_a_users_own_task_yaml_with_local_json_data(tiny, tmp_path):
    """A user's YAML (lm-eval's local `dataset_path: json`) beside tellkit's suite; its metric's direction
    and aggregation come from lm-eval's own definition of the metric."""
    from tellkit.evaluate.harness import general_ood as run

    data = tmp_path / "capitals.jsonl"
    rows = [{"q": f"The capital of {c} is", "choices": [" Paris", " Rome", " Oslo"], "gold": i % 3}
            for i, c in enumerate(["France", "Italy", "Norway", "Spain", "Chile"])]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "capitals.yaml").write_text(
        "task: my_capitals\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
        f"    test: {data}\n  cache_dir: {tmp_path / 'hf-cache'}\n"  # not the user's ~/.cache
        "output_type: multiple_choice\ntest_split: test\ndoc_to_text: q\n"
        "doc_to_choice: choices\ndoc_to_target: gold\nmetric_list:\n  - metric: acc\n  - metric: brier_score\n")
    (tmp_path / "task.jsonl").write_text("")
    (tmp_path / "cfg.yaml").write_text("task: {path: task.jsonl}\nmix: {method: sft}\n"
                                       "eval: {general_tasks: [capitals.yaml], batch_size: 4}\n")
    cfg = load(tmp_path / "cfg.yaml")
    assert cfg.eval.general_tasks == [str(tmp_path / "capitals.yaml")]  # resolved against the config's folder
    r = run(cfg, *tiny)
    assert r["tasks"] == ["my_capitals"] and r["general_score"] == "my_capitals/acc"
    assert r["higher_is_better"] == {"my_capitals/acc": True, "my_capitals/brier_score": False}
    assert len(r["items"]["my_capitals/acc"]) == 5


def test_unknown_tasks_and_scores_name_the_key(tmp_path, config_file):
    from tellkit.evaluate.harness import check_tasks

    with pytest.raises(ConfigError, match=r"eval.general_tasks: 'tellkit_wordnt' is not an lm-eval task.*"
                                          r"did you mean 'tellkit_wordnet'"):
        check_tasks(load(config_file, ["eval.general_tasks=[tellkit_wordnt]"]))
    with pytest.raises(ConfigError, match="no task YAML at"):
        check_tasks(load(config_file, [f"eval.general_tasks=[{tmp_path / 'missing.yaml'}]"]))
    with pytest.raises(ConfigError, match=r"eval.general_score 'arc_easy/acc' must be TASK/METRIC with TASK one of "
                                          r"\['tellkit_wordnet', 'tellkit_pydoc'\]"):
        check_tasks(load(config_file, ["eval.general_tasks=[tellkit_wordnet,tellkit_pydoc]",
                                       "eval.general_score=arc_easy/acc"]))
    with pytest.raises(ConfigError, match="eval.general_tasks is empty"):
        load(config_file, ["eval.metrics=[json,general_ood]"])  # the fixture's general_tasks is []


def test_the_general_score_defaults_to_the_first_tasks_accuracy():
    scores = ["t1/word_perplexity", "t1/bits_per_byte", "t2/acc_norm", "t2/acc"]
    hib = {"t1/word_perplexity": False, "t1/bits_per_byte": False, "t2/acc_norm": True, "t2/acc": True}
    assert general_ood.pick_general_score(scores, hib, ["t2", "t1"]) == "t2/acc"
    assert general_ood.pick_general_score(scores, hib, ["t1", "t2"]) == "t1/bits_per_byte"
    assert general_ood.task_scores({"scores": dict.fromkeys(scores), "higher_is_better": hib,
                                    "tasks": ["t1", "t2"]}) == ["t1/bits_per_byte", "t2/acc"]


def test_a_result_scored_in_another_precision_is_measured_again():
    from tellkit.config import Config
    from tellkit.evaluate.runner import missing_metrics

    stored = {"metrics": {"general_ood": {"suite": list(DEFAULT_TASKS), "limit": 6, "bf16": False}}}
    fp32 = Config.model_validate({"task": {"path": "t.jsonl"}, "mix": {"method": "sft"},
                                  "eval": {"general_limit": 6, "metrics": ["general_ood"], "bf16": False}})
    assert missing_metrics(fp32, stored) == []
    bf16 = fp32.model_copy(update={"eval": fp32.eval.model_copy(update={"bf16": True})})
    assert missing_metrics(bf16, stored) == ["general_ood"]  # base and cells must share one precision
    del stored["metrics"]["general_ood"]["bf16"]  # written before the precision was recorded: fp32
    assert missing_metrics(fp32, stored) == [] and missing_metrics(bf16, stored) == ["general_ood"]
