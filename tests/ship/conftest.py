"""One tiny trained run shared by the ship tests (training it takes a few seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shiphelpers import tiny_config


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_model) -> Path:
    import tellkit.api as api

    folder = tmp_path_factory.mktemp("shiprun")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TELLKIT_CACHE", str(folder / "cache"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        return api.train(api.load(tiny_config(folder, tiny_model)))
