import json
from pathlib import Path

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from tellkit.cli import main
from tellkit.train.collate import collate_packed
from tellkit.train.packing import efficiency, pack

import numpy as np


def test_pack_keeps_rows_within_length_and_every_example_once():
    rng = np.random.default_rng(0)
    lengths = rng.integers(10, 120, size=500)
    rows = pack(lengths, 256)
    assert sorted(i for r in rows for i in r) == list(range(500))
    assert all(lengths[r].sum() <= 256 for r in rows)
    assert efficiency(lengths, rows, 256) > 0.95


def test_packed_rows_do_not_attend_across_examples(tiny_model):
    """The loss of two examples packed in one row equals their losses computed apart."""
    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    a = {"input_ids": list(range(5, 25)), "labels": list(range(5, 25))}
    b = {"input_ids": list(range(30, 42)), "labels": list(range(30, 42))}
    packed = collate_packed(0, 40)([[a, b]])
    logits = model(**packed, use_cache=False).logits[0]  # as in training: no KV cache
    alone_a = model(input_ids=torch.tensor([a["input_ids"]])).logits[0]
    alone_b = model(input_ids=torch.tensor([b["input_ids"]])).logits[0]
    assert torch.allclose(logits[:20], alone_a, atol=1e-5)
    assert torch.allclose(logits[20:32], alone_b, atol=1e-5)


def test_tellkit_run_end_to_end(config_file, tiny_model, capsys):
    run = config_file.parent / "run"
    assert main(["run", str(config_file), "train.epochs=4", "train.lr=1e-2"]) == 0
    assert "adapter:" in capsys.readouterr().out
    state = json.loads((run / "run.json").read_text())
    assert state["status"] == "complete" and state["anchor"] == "ANCHOR: colour task."
    assert (run / "adapter" / "adapter_model.safetensors").exists()
    assert not list(run.glob("adapter/*.bin"))
    losses = [r["loss"] for r in json.loads((run / "loss_log.json").read_text())]
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.3  # it learned something
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), run / "adapter")
    assert any("lora_" in n for n, _ in model.named_parameters())
    assert state["train"]["train_tokens"] == state["mixture"]["total"]["tokens"] * 4


def test_finished_run_is_not_overwritten(config_file, capsys):
    assert main(["train", str(config_file), "train.max_steps=2"]) == 0
    assert main(["train", str(config_file), "train.max_steps=2"]) == 2
    assert "already holds this finished run" in capsys.readouterr().err
    assert main(["train", str(config_file), "train.max_steps=3"]) == 2
    assert "holds another run" in capsys.readouterr().err


def test_dev_split_selects_the_best_checkpoint(config_file):
    run = config_file.parent / "run"
    assert main(["train", str(config_file), "eval.dev_fraction=0.25", "train.max_steps=6",
                 "train.save_steps=2", "train.lr=1e-2"]) == 0
    state = json.loads((run / "run.json").read_text())
    t, m = state["train"], state["mixture"]
    assert t["dev_examples"] == m["dev_examples"] == 6 and m["task"]["examples"] == 24 - 6
    assert t["best_checkpoint"] and t["best_dev_loss"] is not None
    # the adapter written is the best checkpoint's, not necessarily the last step's
    from safetensors.torch import load_file

    best = load_file(str(Path(t["best_checkpoint"]) / "adapter_model.safetensors"))
    final = load_file(str(run / "adapter" / "adapter_model.safetensors"))
    assert best.keys() == final.keys() and all(torch.equal(best[k], final[k]) for k in best)
