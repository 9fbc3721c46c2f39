"""scripts/anchor_table.py: the three anchor variants side by side, each against the handwritten anchor."""

import gzip
import json
from pathlib import Path

from tests.scripts import load_script


def _load():
    return load_script("anchor_table")


def _cell(name: str, right: int, anchor: str | None = "[A] Orders:", n: int = 40) -> dict:
    """A finished cell whose answers get `right` of `n` test items fully right (two fields each; a field_exact
    row is the hits per field, then whether the item has the field)."""
    rows = [[1, 1, 1, 1]] * right + [[0, 0, 1, 1]] * (n - right)
    value = right / n
    json_result = {"n": n, "scores": {"field_exact": {"value": value}, "strict": {"value": value}},
                   "items": {"field_exact": rows, "strict": [1] * right + [0] * (n - right)}}
    return {"name": name, "run": {"anchor": anchor, "train": {"train_tokens": 1000 + right}}, "scores": {"metrics": {"json": json_result}}}


def _archive(folder: Path, name: str, cells: list[dict]) -> None:
    (folder / name).mkdir(parents=True)
    with gzip.open(folder / name / "cells.jsonl.gz", "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(c) + "\n" for c in cells)


def test_each_variant_is_compared_with_the_handwritten_anchor(tmp_path):
    table = _load()
    _archive(tmp_path, "handwritten", [_cell("tell-s0", 20), _cell("tell-s1", 22), _cell("tell-no-anchor-s0", 8, None),
                                       _cell("tell-no-anchor-s1", 10, None), _cell("base", 0, None)])
    _archive(tmp_path, "drafted-best", [_cell("tell-s0", 21, "[B] Drafted:")])
    assert table.main(str(tmp_path)) == 0
    text = (tmp_path / "ablation.md").read_text()
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| ")}
    assert rows["handwritten anchor"].split(" | ")[2:4] == ["2", "1021"]  # seeds, mean training tokens
    assert rows["no anchor"].rstrip(" |").split(" | ")[-1].startswith("-0.300 [")  # 0.225 - 0.525, paired
    low, high = (float(x) for x in rows["no anchor"].rstrip(" |").split("[")[-1].rstrip("]").split(", "))
    assert high < 0  # 12 items worse on every seed: the interval excludes 0
    assert "`[B] Drafted:`" in rows["best drafted anchor"] and "(none)" in rows["no anchor"]
    assert rows["base (untrained)"].split(" | ")[4].startswith("0.000")


def test_missing_cells_say_what_to_run(tmp_path):
    table = _load()
    assert table.main(str(tmp_path)) == 0
    assert "run `bash scripts/run_study3.sh anchor`" in (tmp_path / "ablation.md").read_text()
