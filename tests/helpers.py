"""What tests share: small synthetic data sets, the one tiny TELL config every trained test uses, and
the CLI's error-line check. (Import as `tests.helpers`.)"""

from __future__ import annotations

import json
import random
from pathlib import Path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def task_rows(n: int, seed: int = 0) -> list[dict]:
    """A learnable toy task: map a colour word to a fixed JSON answer."""
    rng = random.Random(seed)
    colours = ["red", "green", "blue", "yellow"]
    rows = []
    for i in range(n):
        c = rng.choice(colours)
        rows.append({"id": f"t{i}", "prompt": f"Which colour is named here: {c} {i}?",
                     "completion": json.dumps({"colour": c})})
    return rows


def general_rows(n: int, seed: int = 1) -> list[dict]:
    rng = random.Random(seed)
    words = "the quick brown fox jumps over lazy dog and runs far away into green fields".split()
    return [{"id": f"g{i}", "instruction": "Write a short sentence about " + rng.choice(words) + ".",
             "input": "", "output": " ".join(rng.choice(words) for _ in range(rng.randint(5, 40)))}
            for i in range(n)]


def write_tiny_data(folder: Path, *, test: int = 8, general: int = 600) -> Path:
    """task.jsonl (24 examples), test.jsonl and general.jsonl in `folder`."""
    write_jsonl(folder / "task.jsonl", task_rows(24))
    write_jsonl(folder / "test.jsonl", task_rows(test, seed=5))
    write_jsonl(folder / "general.jsonl", general_rows(general))
    return folder


def tiny_config(folder: Path, model: Path, *, test: int = 8, general: int = 600, **sections: dict) -> Path:
    """A complete TELL config over the tiny model, small enough to train in seconds, with its data, in
    `folder` (cfg.yaml). `sections` update the config's sections key by key, e.g. train={"max_steps": 3}."""
    import yaml

    write_tiny_data(folder, test=test, general=general)
    cfg = {
        "model": {"name": str(model)},
        "task": {"path": "task.jsonl", "test_path": "test.jsonl"},
        "general": {"path": "general.jsonl"},
        "anchor": {"text": "ANCHOR: colour task."},
        "mix": {"method": "tell", "ratio": 3, "seed": 0},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "train": {"epochs": 1, "lr": 3e-3, "batch_size": 4, "max_length": 128, "save_steps": 5,
                  "logging_steps": 1, "bf16": False},
        # general ability (lm-eval) off: the tests of the two-axis verdict turn it on with a small limit
        "eval": {"metrics": ["json"], "max_new_tokens": 16, "batch_size": 4, "general_tasks": []},
        "output": {"dir": "run"},
    }
    for name, keys in sections.items():
        cfg[name] = {**cfg.get(name, {}), **keys}
    path = folder / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def visible_lines(err: str) -> list[str]:
    """What a terminal shows: progress bars redraw with \\r and vanish (tqdm leave=False)."""
    return [seg for line in err.split("\n") if (seg := line.rsplit("\r", 1)[-1].strip())]


def user_error(argv: list[str], capsys, *expected: str) -> str:
    """Run the CLI, require exit 2 and exactly one `error:` line containing every `expected` text."""
    from tellkit.cli import main

    rc = main(argv)
    err = capsys.readouterr().err
    lines = visible_lines(err)
    assert rc == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for text in expected:
        assert text in lines[0], (text, lines[0])
    return lines[0]


def lora_model(tiny_model, attn="sdpa"):
    """The tiny model under LoRA r=4 (all linear layers) with non-zero B, so LoRA changes outputs and gets gradients."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    m = AutoModelForCausalLM.from_pretrained(tiny_model, attn_implementation=attn)
    m = get_peft_model(m, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.0))
    for n, p in m.named_parameters():  # non-zero B so LoRA changes the outputs and gets real gradients
        if "lora_B" in n:
            p.data.normal_(0, 0.05)
    return m


def varied_tiny_model(tiny_model):
    """(model, tokenizer) of the tiny model with larger random weights: its own init only ever says EOS;
    these give varied outputs (seeded, so every test sees the same model)."""
    import torch

    from tellkit.models import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(str(tiny_model))
    torch.manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() > 1:
                param.normal_(0, 0.15)
    return model, tok
