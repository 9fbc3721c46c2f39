"""One tiny trained run shared by the ship tests (training it takes a few seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import tiny_config

# A high lr: in 12 steps the random model learns to answer with visible text (not only newlines), so
# comparing outputs is not comparing empty strings.
SHIP = {"test": 6, "general": 300, "train": {"max_steps": 12, "lr": 3e-2, "save_steps": 50},
        "eval": {"max_new_tokens": 12}}


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_model) -> Path:
    import tellkit.api as api

    folder = tmp_path_factory.mktemp("shiprun")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TELLKIT_CACHE", str(folder / "cache"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        return api.train(api.load(tiny_config(folder, tiny_model, **SHIP)))
