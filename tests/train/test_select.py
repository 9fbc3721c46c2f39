"""Checkpoint selection by a task metric on the dev split (tellkit/train/select.py)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from tellkit import metrics as metric_registry
from tellkit.config import load_config
from tellkit.config.schema import SELECTABLE
from tellkit.data.anchor import apply_anchor
from tellkit.data.formats import to_examples
from tellkit.data.readers import read_records
from tellkit.data.tokenize import encode_prompt
from tellkit.errors import ConfigError, TellkitError
from tellkit.generation.generate import generate
from tellkit.mix.prepare import mix, prepare
from tellkit.runs.rundir import training_hash
from tellkit.train.loss import HiddenHead, fuse_head
from tellkit.train.select import DevSelector
from tests.helpers import varied_tiny_model

DEV = "eval.dev_fraction=0.25"


def _selector(config_file, *overrides):
    cfg = load_config(config_file, list(overrides))
    p = prepare(cfg)
    mixture = mix(cfg, prepared=p)
    return cfg, mixture, p.tokenizer, DevSelector.from_config(cfg, mixture, p.tokenizer)


@pytest.fixture(scope="module")
def training_model(tiny_model):
    """The tiny model as the trainer holds it: LoRA unmerged, train mode, cache off, fused head."""
    from peft import LoraConfig, get_peft_model

    model, _ = varied_tiny_model(tiny_model)
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                             init_lora_weights=False))  # non-zero B: the adapter changes outputs
    model.train()
    head = fuse_head(model)
    assert head is not None
    return model, head


def test_dev_prompts_are_the_eval_prompts_with_the_method_anchor(config_file):
    for method, anchor in (("tell", "ANCHOR: colour task."), ("sft", None)):
        cfg, mixture, tok, sel = _selector(config_file, DEV, "eval.select_by=json/strict", f"mix.method={method}")
        # the dev examples read from the task file the way `tellkit eval` reads its test file
        examples = {ex["id"]: ex for ex in to_examples(read_records(cfg.task.path), cfg.task.format, cfg.task.columns)}
        ids = mixture.task.select([int(i) for i in mixture.dev_rows])["id"]
        assert len(sel.prompts) == len(sel.golds) == len(ids) == 6
        for prompt, gold, rid in zip(sel.prompts, sel.golds, ids):
            messages = examples[rid]["messages"]
            assert prompt == encode_prompt(tok, apply_anchor(messages, anchor, cfg.anchor.position,
                                                             cfg.anchor.separator))
            assert gold == messages[-1]["content"] and gold.startswith('{"colour"')
            assert ("ANCHOR: colour task." in prompt) == (anchor is not None) and gold not in prompt


def test_score_is_the_metric_of_the_generated_dev_outputs(config_file, training_model):
    model, head = training_model
    _, _, tok, sel = _selector(config_file, DEV, "eval.select_by=chrf/chrf", "eval.select_max_new_tokens=12")
    assert (sel.key, sel.greater_is_better) == ("chrf", True)
    rng = torch.get_rng_state()
    value = sel.score(model)
    # the training model is left as the trainer needs it: train mode, fused head, cache off, RNG untouched
    assert model.training and isinstance(model.get_output_embeddings(), HiddenHead)
    assert model.config.use_cache is False and torch.equal(torch.get_rng_state(), rng)
    assert all(p.requires_grad for n, p in model.named_parameters() if "lora_" in n)
    assert sel.seconds > 0

    # the same outputs as `tellkit eval` gets from the merged adapter, scored by the registry
    merged = copy.deepcopy(model)
    merged.set_output_embeddings(head)
    merged = merged.merge_and_unload().eval()
    outputs = generate(merged, tok, sel.prompts, max_new_tokens=12, progress=False)
    assert outputs == sel.outputs(model) and len(set(outputs)) > 1
    expected = metric_registry.compute(["chrf"], outputs, sel.golds)["chrf"]["scores"]["chrf"]["value"]
    assert value == pytest.approx(expected) and 0 < value < 100


def test_json_strict_key_and_direction(config_file, training_model):
    model, _ = training_model
    _, _, _, sel = _selector(config_file, DEV, "eval.select_by=json/strict", "eval.select_max_new_tokens=4")
    assert (sel.key, sel.greater_is_better) == ("json_strict", True)
    assert sel.score(model) == 0.0  # 4 random tokens are no JSON object
    _, _, _, ter = _selector(config_file, DEV, "eval.select_by=ter/ter")
    assert (ter.key, ter.greater_is_better) == ("ter", False)
    _, _, _, chrfpp = _selector(config_file, DEV, "eval.select_by=chrf++/chrf++")
    assert chrfpp.key == "chrfpp"


def test_no_selector_by_loss_or_without_a_dev_split(config_file):
    assert _selector(config_file, DEV)[3] is None  # select_by defaults to loss
    assert _selector(config_file, "eval.select_by=json/strict")[3] is None  # no dev split


@pytest.mark.parametrize("value, expected", [
    ("json/nope", "metric 'json' has no score 'nope'; allowed: json/strict, json/lenient, json/schema, "
                  "json/field_exact"),
    ("accuracy", "choose 'loss' or 'metric/score' with metric one of bleu, bleurt, chrf, chrf++, json, label, ter"),
    ("labels/accuracy", "metric one of"),
    ("json/schema", "eval.select_by=json/schema needs eval.json_schema"),
])
def test_select_by_is_validated(config_file, value, expected):
    with pytest.raises(ConfigError, match="eval.select_by") as err:
        load_config(config_file, [f"eval.select_by={value}"])
    assert expected in str(err.value)


def test_a_gold_the_metric_cannot_read_fails_before_training(config_file, tiny_model):
    cfg = load_config(config_file, [DEV, "eval.select_by=json/field_exact"])
    with pytest.raises(TellkitError, match="eval.select_by=json/field_exact on the dev split: .*not a JSON object"):
        DevSelector(cfg, None, ["q"], ["plain text, no JSON"])
    with pytest.raises(ConfigError, match="reports no 'field_exact' score.*json/strict, json/lenient"):
        DevSelector(cfg, None, ["q"], ["{}"])  # a gold object without fields: nothing to match


def test_selectable_scores_are_the_registry_s(tmp_path):
    assert set(SELECTABLE) == set(metric_registry.available())
    gold = json.dumps({"hallucination": "yes", "colour": "red"})
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"type": "object"}))
    for name, scores in SELECTABLE.items():
        if name == "bleurt":  # needs a checkpoint; it reports the one score named after it
            continue
        result = metric_registry.compute([name], [gold], [gold], {"json_schema": str(schema)} if name == "json" else {})
        assert tuple(result[name]["scores"]) == scores


def test_the_dev_selection_is_part_of_the_training_hash(config_file):
    def h(*overrides):
        return training_hash(load_config(config_file, list(overrides)))

    assert h() == h("eval.select_by=json/strict")  # without a dev split it selects nothing
    assert h(DEV) != h() and h(DEV) != h("eval.dev_fraction=0.2")
    assert h(DEV) == h(DEV, "eval.select_max_new_tokens=8")  # by loss: generation settings do not matter
    by_json = h(DEV, "eval.select_by=json/strict")
    assert by_json != h(DEV) and by_json != h(DEV, "eval.select_by=json/lenient")
    assert by_json != h(DEV, "eval.select_by=json/strict", "eval.select_max_new_tokens=8")
    assert by_json != h(DEV, "eval.select_by=json/strict", "eval.stop_at_json=true")
    assert by_json == h(DEV, "eval.select_by=json/strict", "eval.max_new_tokens=32", "eval.limit=3")  # test split only


def _train_with_selection(config_file, select_by: str) -> tuple[dict, list[dict]]:
    from tellkit.cli import main

    run = config_file.parent / "run"
    assert main(["train", str(config_file), DEV, f"eval.select_by={select_by}", "eval.select_max_new_tokens=16",
                 "train.max_steps=12", "train.save_steps=2", "train.lr=1e-2"]) == 0
    return json.loads((run / "run.json").read_text())["train"], json.loads((run / "loss_log.json").read_text())


def test_train_records_the_dev_score_at_every_save(config_file):
    t, log = _train_with_selection(config_file, "json/strict")
    saved = [r for r in log if "dev_task_json_strict" in r]
    assert [r["step"] for r in saved] == [2, 4, 6, 8, 10, 12] and all("dev_task_loss" in r for r in saved)
    assert t["selected_by"] == "eval_task_json_strict" and t["selection_seconds"] > 0
    assert t["best_dev_score"] == max(r["dev_task_json_strict"] for r in saved) and t["best_dev_loss"] is None


def test_train_keeps_the_checkpoint_with_the_best_dev_score_not_the_lowest_loss(config_file):
    from safetensors.torch import load_file

    t, log = _train_with_selection(config_file, "chrf/chrf")  # a graded score: the saves differ on it
    saved = [r for r in log if "dev_task_chrf" in r]
    scores = [r["dev_task_chrf"] for r in saved]
    best = saved[scores.index(max(scores))]  # of equal scores the trainer keeps the earliest
    lowest_loss = min(saved, key=lambda r: r["dev_task_loss"])
    assert len(set(scores)) > 1 and best["step"] != lowest_loss["step"]  # this run tells the two rules apart
    assert t["best_checkpoint"].endswith(f"checkpoint-{best['step']}") and t["best_dev_score"] == max(scores)
    kept = load_file(str(Path(t["best_checkpoint"]) / "adapter_model.safetensors"))
    final = load_file(str(config_file.parent / "run" / "adapter" / "adapter_model.safetensors"))
    assert kept.keys() == final.keys() and all(torch.equal(kept[k], final[k]) for k in kept)
