"""Shared fixtures: a tiny random chat model and small task/general data sets.

Everything is built offline at test time so the suite needs no network and
no shipped weights.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from datahelpers import general_rows, task_rows, write_jsonl


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # Tokenization caches and converted models must not leak between tests and the user's home.
    monkeypatch.setenv("TELLKIT_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    # The tiny test models are far faster on one thread than on two contending ones.
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from tellkit.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def data_dir(tmp_path) -> Path:
    write_jsonl(tmp_path / "task.jsonl", task_rows(24))
    write_jsonl(tmp_path / "test.jsonl", task_rows(8, seed=5))
    write_jsonl(tmp_path / "general.jsonl", general_rows(600))
    return tmp_path


@pytest.fixture
def config_file(data_dir, tiny_model) -> Path:
    """A complete TELL config over the tiny model, small enough to train in seconds."""
    import yaml

    cfg = {
        "model": {"name": str(tiny_model)},
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
    path = data_dir / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path
