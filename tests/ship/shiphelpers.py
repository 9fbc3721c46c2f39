"""The tiny run config the ship tests train (a module of its own: `conftest` names clash across test folders)."""

from __future__ import annotations

from pathlib import Path

import yaml

from datahelpers import general_rows, task_rows, write_jsonl


def tiny_config(folder: Path, model: Path, **train) -> Path:
    write_jsonl(folder / "task.jsonl", task_rows(24))
    write_jsonl(folder / "test.jsonl", task_rows(6, seed=5))
    write_jsonl(folder / "general.jsonl", general_rows(300))
    cfg = {
        "model": {"name": str(model)},
        "task": {"path": "task.jsonl", "test_path": "test.jsonl"},
        "general": {"path": "general.jsonl"},
        "anchor": {"text": "ANCHOR: colour task."},
        "mix": {"method": "tell", "ratio": 3, "seed": 0},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        # a high lr: in 12 steps the random model learns to answer with visible text (not only newlines),
        # so comparing outputs is not comparing empty strings
        "train": {"max_steps": 12, "lr": 3e-2, "batch_size": 4, "max_length": 128, "save_steps": 50,
                  "logging_steps": 1, "bf16": False, **train},
        "eval": {"metrics": ["json"], "max_new_tokens": 12, "batch_size": 4, "general_tasks": []},  # no lm-eval
        "output": {"dir": "run"},
    }
    path = folder / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path
