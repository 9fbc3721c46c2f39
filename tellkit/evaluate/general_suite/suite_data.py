"""The default suite's rows, for lm-eval's `custom_dataset` hook (the task YAMLs beside this file name it).

Read from the JSONL files beside this module, wherever tellkit is installed: a YAML `data_files:` path
would resolve against the working directory instead, and `datasets.load_dataset("json")` would
write a cache copy of each file on every new install. Nothing here touches the network.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (HERE / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def _split(name: str):
    import datasets

    return datasets.DatasetDict({"test": datasets.Dataset.from_list(_rows(name))})


def wordnet(**_metadata):
    """tellkit_wordnet: {id, word, pos, choices (4 definitions), label}."""
    return _split("wordnet_define.jsonl")


def pydoc(**_metadata):
    """tellkit_pydoc: {id, text}: one Python standard-library docstring per row."""
    return _split("pydoc.jsonl")
