"""Shared fixtures: a tiny random chat model and small task/general data sets.

Everything is built offline at test time so the suite needs no network and
no shipped weights.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import tiny_config, write_tiny_data


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
    return write_tiny_data(tmp_path)


@pytest.fixture
def config_file(data_dir, tiny_model) -> Path:
    """A complete TELL config over the tiny model, small enough to train in seconds (tests.helpers.tiny_config)."""
    return tiny_config(data_dir, tiny_model)
