import json
from pathlib import Path

import numpy as np
import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from tellkit.cli import main


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
    assert state["train"]["fused_loss"] and state["train"]["attention"] == "tellkit_varlen"
    assert state["preflight"]["plan"]["optimizer_steps"] == state["train"]["optimizer_steps"]
    import torch  # the CPU threads it trained with (tellkit/threads.py), next to the malloc in versions

    assert state["train"]["threads"] == torch.get_num_threads() and state["train"]["omp_wait_policy"]
    assert "malloc" in state["versions"]


def _train(config_file, out: str, *overrides: str) -> tuple[dict, list[dict]]:
    assert main(["train", str(config_file), f"output.dir={out}", *overrides]) == 0
    run = config_file.parent / out
    return json.loads((run / "run.json").read_text())["train"], json.loads((run / "loss_log.json").read_text())


def test_packing_changes_neither_the_steps_nor_the_losses(config_file):
    """batch_size counts examples: packed (one padding-free row) and padded micro-batches hold the same
    examples, so the step count, the tokens and the per-step losses agree."""
    on, log_on = _train(config_file, "packed", "train.packing=true", "train.epochs=2")
    off, log_off = _train(config_file, "padded", "train.packing=false", "train.epochs=2")
    assert on["optimizer_steps"] == off["optimizer_steps"] > 0
    assert on["train_tokens"] == off["train_tokens"]
    assert np.allclose([r["loss"] for r in log_on], [r["loss"] for r in log_off], atol=1e-4)


def test_task_and_general_losses_add_up_to_the_loss(config_file):
    """Per-source losses come from the same pass: weighted by their supervised tokens they give the
    step's loss; the task loss is logged only for steps that had task tokens."""
    _, log = _train(config_file, "src", "train.grad_accum=2")
    assert any("task_loss" in r for r in log) and any("general_loss" in r for r in log)
    for r in log:
        total = r.get("task_loss", 0) * r["task_tokens"] + r.get("general_loss", 0) * r["general_tokens"]
        assert abs(total / (r["task_tokens"] + r["general_tokens"]) - r["loss"]) < 1e-5
        assert ("task_loss" in r) == (r["task_tokens"] > 0)


def test_finished_run_is_not_overwritten(config_file, capsys):
    assert main(["train", str(config_file), "train.max_steps=2"]) == 0
    assert main(["train", str(config_file), "train.max_steps=2"]) == 2
    assert "already holds this finished run" in capsys.readouterr().err
    assert main(["train", str(config_file), "train.max_steps=3"]) == 2
    assert "holds another run" in capsys.readouterr().err


def test_dev_split_selects_the_best_checkpoint(config_file):
    run = config_file.parent / "run"
    assert main(["train", str(config_file), "eval.dev_fraction=0.25", "train.max_steps=6",
                 "train.save_steps=2", "train.lr=1e-2", "general.heldout_path=general.jsonl"]) == 0
    state = json.loads((run / "run.json").read_text())
    # dev loss by source at every save: the held-out task examples, and held-out general data
    saved = [r for r in json.loads((run / "loss_log.json").read_text()) if "dev_task_loss" in r]
    assert [r["step"] for r in saved] == [2, 4, 6] and all("dev_general_loss" in r for r in saved)
    assert min(r["dev_task_loss"] for r in saved) == pytest.approx(state["train"]["best_dev_loss"])
    t, m = state["train"], state["mixture"]
    assert t["dev_examples"] == m["dev_examples"] == 6 and m["task"]["examples"] == 24 - 6
    assert t["best_checkpoint"] and t["best_dev_loss"] is not None
    # the adapter written is the best checkpoint's, not necessarily the last step's
    from safetensors.torch import load_file

    best = load_file(str(Path(t["best_checkpoint"]) / "adapter_model.safetensors"))
    final = load_file(str(run / "adapter" / "adapter_model.safetensors"))
    assert best.keys() == final.keys() and all(torch.equal(best[k], final[k]) for k in best)


def test_gradient_checkpointing_changes_memory_not_the_losses(config_file):
    plain, log_plain = _train(config_file, "plain", "train.max_steps=3")
    ckpt, log_ckpt = _train(config_file, "ckpt", "train.max_steps=3", "train.gradient_checkpointing=true")
    assert ckpt["gradient_checkpointing"] and not plain["gradient_checkpointing"]
    assert np.allclose([r["loss"] for r in log_plain], [r["loss"] for r in log_ckpt], atol=1e-5)


def test_flash_attention_only_for_16_bit_training(monkeypatch):
    # flash-attn has no fp32 kernel: an fp32 run on a GPU keeps tellkit's per-example SDPA (gpu_check.py's
    # fp32 loss check against the CPU path trains that way).
    import sys
    import types

    import torch

    from tellkit.train.attention import NAME, training_attention

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(sys.modules, "flash_attn", types.ModuleType("flash_attn"))
    assert training_attention(True, half=True) == "flash_attention_2"
    assert training_attention(True, half=False) == NAME and training_attention(False, half=False) == "sdpa"
