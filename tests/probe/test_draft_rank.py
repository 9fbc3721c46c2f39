import json
import math
from pathlib import Path

import pytest
import yaml

from tellkit.api import load
from tellkit.errors import ConfigError, TellkitError
from tellkit.probe.draft import (
    FILE_HEADER,
    clean_candidate,
    dedupe,
    draft_anchors,
    read_anchor_file,
    template_anchor,
    write_anchor_file,
)
from tellkit.probe.probe import task_examples
from tellkit.probe.rank import rank_anchors, rank_key, sort_ranked
from tests.helpers import general_rows, write_jsonl

# ----------------------------------------------------------------------------- cleaning


@pytest.mark.parametrize("reply, want", [
    ('Sure! Here is the instruction:\n\n"Analyze the response for hallucinations."',
     "Analyze the response for hallucinations."),
    ("1. Instruction: Classify the colour named in the text.", "Classify the colour named in the text."),
    ("**Task:** Determine whether the answer is supported.", "Determine whether the answer is supported."),
    ("The instruction is: Translate the sentence into Icelandic.", "Translate the sentence into Icelandic."),
    ("Okay.\n\n  Label   each\tquery.  ", "Label each query."),
    ("# Summarise the text briefly.", "Summarise the text briefly."),
    ("", None), ("   \n\n", None), ("!!! ???", None), ("Yes", None), ("What can I say?", None),
])
def test_clean_candidate(reply, want):
    assert clean_candidate(reply) == want


def test_clean_candidate_cuts_long_replies_at_a_sentence_end():
    reply = "Classify the colour. " + "Then explain it at great length " * 20
    assert clean_candidate(reply) == "Classify the colour."
    no_stop = clean_candidate("word " * 200)
    assert len(no_stop) <= 300 and not no_stop.endswith(" ")


def test_dedupe_ignores_case_spacing_and_final_period():
    assert dedupe(["Label it.", "label  it", "", "  ", "Other one"]) == ["Label it.", "Other one"]


# ----------------------------------------------------------------------------- template


def _cfg_with_task(tmp_path, rows, name="halu"):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "train-small.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (folder / "cfg.yaml").write_text(yaml.safe_dump({"task": {"path": "train-small.jsonl"}, "mix": {"method": "sft"}}))
    cfg = load(folder / "cfg.yaml")
    return cfg, task_examples(cfg, 64)


def test_template_anchor_json_labels_and_free_text(tmp_path):
    json_rows = [{"prompt": f"q{i}", "completion": json.dumps({"thought": "t", "hallucination": "no"})}
                 for i in range(5)]
    cfg, ex = _cfg_with_task(tmp_path, json_rows)
    assert template_anchor(cfg, ex) == ('[Task: halu] Read the request below and answer with a JSON object with '
                                        'the keys "thought", "hallucination".')
    label_rows = [{"prompt": f"q{i}", "completion": ["yes", "no"][i % 2]} for i in range(6)]
    cfg, ex = _cfg_with_task(tmp_path, label_rows, name="labels")
    assert template_anchor(cfg, ex) == "[Task: labels] Read the request below and answer with one of: yes, no."
    free_rows = [{"prompt": f"q{i}", "completion": f"a long free answer number {i}"} for i in range(12)]
    cfg, ex = _cfg_with_task(tmp_path, free_rows, name="data")
    assert template_anchor(cfg, ex) == "[Task] Read the request below and answer it in the style of this task."


# ----------------------------------------------------------------------------- anchor file


def test_anchor_file_round_trip(tmp_path):
    anchors = ["Classify the colour.", "[Task: x] Answer in JSON with the keys \"a\", \"b\".", "Übersetze das."]
    path = write_anchor_file(tmp_path / "a" / "anchors.txt", anchors)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("#") and text.startswith(FILE_HEADER)
    assert read_anchor_file(path) == anchors
    path.write_text(text + "\n   \n# my note\nA new one added by hand.\nClassify the colour.\n", encoding="utf-8")
    assert read_anchor_file(path) == [*anchors, "A new one added by hand."]


@pytest.mark.parametrize("bad", ["two\nlines", "", "  ", "# looks like a comment"])
def test_write_anchor_file_rejects_what_cannot_round_trip(tmp_path, bad):
    with pytest.raises(TellkitError):
        write_anchor_file(tmp_path / "a.txt", ["fine anchor", bad])
    assert not (tmp_path / "a.txt").exists()


def test_read_anchor_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        read_anchor_file(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text(FILE_HEADER)
    with pytest.raises(ConfigError, match="no anchors"):
        read_anchor_file(tmp_path / "empty.txt")


# ----------------------------------------------------------------------------- drafting


def test_draft_anchors_on_the_tiny_model(config_file, tmp_path):
    cfg = load(config_file)
    anchors = draft_anchors(cfg, k=2, n=3, max_new_tokens=12, seed=0)
    template = template_anchor(cfg, task_examples(cfg, 64))
    assert anchors and anchors[-1] == template
    assert template.startswith("[Task") and '"colour"' in template  # conftest answers are {"colour": ...}
    assert len(anchors) <= 4 and len(anchors) == len(dedupe(anchors))
    assert all(a.strip() == a and "\n" not in a for a in anchors)
    assert draft_anchors(cfg, k=2, n=3, max_new_tokens=12, seed=0) == anchors  # seeded
    path = write_anchor_file(tmp_path / "anchors.txt", anchors)
    assert read_anchor_file(path) == anchors


def test_draft_anchors_without_a_model_gives_the_template(config_file):
    cfg = load(config_file)
    assert draft_anchors(cfg, n=0) == [template_anchor(cfg, task_examples(cfg, 64))]


# ----------------------------------------------------------------------------- ranking


def _row(name, acc, dist, sil):
    return {"anchor": name, "probe_accuracy": acc, "centroid_cosine_distance": dist, "silhouette": sil}


def test_rank_key_with_mocked_metrics():
    rows = [
        _row("tie-low-dist", 1.0, 0.01, 0.9),
        _row("lower-acc", 0.9, 0.90, 0.9),
        _row("tie-high-dist", 1.0, 0.05, 0.1),
        _row("tie-high-dist-better-sil", 1.0, 0.05, 0.2),
        _row("nan-acc", math.nan, 0.99, 0.99),
        _row("nan-dist", 1.0, math.nan, 0.99),
    ]
    ranked = sort_ranked(rows)
    assert [r["anchor"] for r in ranked] == ["tie-high-dist-better-sil", "tie-high-dist", "tie-low-dist",
                                             "nan-dist", "lower-acc", "nan-acc"]
    assert [r["rank"] for r in ranked] == [1, 2, 3, 4, 5, 6]
    assert rank_key(rows[0]) == (1.0, 0.01, 0.9)
    # equal keys keep the input order
    assert [r["anchor"] for r in sort_ranked([_row("a", 1, 0, 0), _row("b", 1, 0, 0)])] == ["a", "b"]


@pytest.fixture
def lookalike_config(tmp_path, tiny_model):
    """Task queries drawn from the same distribution as the general queries: only an anchor can tell them apart."""
    write_jsonl(tmp_path / "general.jsonl", general_rows(300))
    write_jsonl(tmp_path / "task.jsonl", [{"prompt": r["instruction"], "completion": r["output"]}
                                          for r in general_rows(40, seed=7)])
    cfg = {"model": {"name": str(tiny_model)}, "task": {"path": "task.jsonl"}, "general": {"path": "general.jsonl"},
           "mix": {"method": "sft"}, "output": {"dir": "run"}, "probe": {"n_queries": 16}}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    return load(tmp_path / "cfg.yaml")


def test_rank_anchors_puts_the_distinctive_anchor_first(lookalike_config):
    distinctive = "ZQX-7 colour protocol: reply with the hex code only. " * 4
    ranked = rank_anchors(lookalike_config, ["Write", distinctive.strip(), ".", "Write"])
    assert [r["rank"] for r in ranked] == [1, 2, 3]  # the repeated candidate is ranked once
    assert ranked[0]["anchor"] == distinctive.strip()
    assert ranked[0]["centroid_cosine_distance"] > 3 * max(r["centroid_cosine_distance"] for r in ranked[1:])
    out = Path(lookalike_config.output.dir) / "anchors"
    report = json.loads((out / "anchors_ranked.json").read_text())
    assert [r["anchor"] for r in report["ranked"]] == [r["anchor"] for r in ranked]
    assert report["no_anchor"]["probe_accuracy"] < 0.8  # without an anchor the look-alikes are inseparable
    md = (out / "anchors_ranked.md").read_text()
    assert "(no anchor)" in md and "ZQX-7" in md


def test_rank_anchors_needs_candidates(lookalike_config):
    with pytest.raises(TellkitError, match="no anchor candidates"):
        rank_anchors(lookalike_config, ["", "  "])
