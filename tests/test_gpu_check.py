"""benchmarks/gpu_check.py in its tiny CPU mode: the script a GPU machine will run, checked end to end here
(models built from configs, the loss against the CPU path, tellkit vs TRL over the real-length mixture)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def test_gpu_check_tiny_mode_writes_its_table(tmp_path):
    trl = __import__("importlib.util").util.find_spec("trl") is not None
    p = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--out", str(tmp_path), "--steps", "2"],
                       capture_output=True, text=True, timeout=300,
                       env={**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"})
    assert p.returncode == 0, p.stderr[-2000:]
    rows = json.loads((tmp_path / "gpu_check.json").read_text())["rows"]
    table = (tmp_path / "gpu_check.md").read_text()
    assert table.count("\n| ") == len(rows) + 1  # one Markdown table: a header and a row per check
    loss = [r for r in rows if r["check"] == "loss vs CPU fp32"]
    assert [r["status"].split(":")[0] for r in loss] == ["ok", "ok"]  # fp32 and bf16 autocast
    train = {(r["model"], r["arm"]): r for r in rows if r["check"] == "train side by side"}
    assert {m for m, _ in train} == {"llama-3.2-1b (tiny)", "qwen2.5-1.5b (tiny)"}
    for model in ("llama-3.2-1b (tiny)", "qwen2.5-1.5b (tiny)"):
        assert train[model, "tellkit"]["tok_s"] > 0 and train[model, "tellkit"]["estimate_gib"] > 0
        assert train[model, "tellkit"]["padding"] == pytest.approx(0)
        if trl:  # TRL's padded arm pads the real mixture's variable lengths; its ratio column is set
            assert train[model, "trl-padded"]["padding"] > 0.1 and train[model, "trl-padded"]["vs_trl"] == 1
            assert train[model, "trl-packed-nockpt"]["status"] == "ok"
        else:
            assert train[model, "trl-padded"]["status"].startswith("skipped: trl")
    assert any(r["arm"] == "eval.backend vllm" for r in rows)
