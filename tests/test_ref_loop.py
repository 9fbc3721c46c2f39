"""benchmarks/ref_loop.py, the plain peft loop the defaults are measured against, on the tiny model."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TICKETS = ROOT / "examples" / "data" / "tickets"


def test_ref_loop_trains_the_planned_steps_and_scores_with_tellkits_metric(tmp_path, tiny_model):
    rows = (TICKETS / "train.jsonl").read_text(encoding="utf-8").splitlines()[:7]
    (tmp_path / "train.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (tmp_path / "test.jsonl").write_text("\n".join(rows[:3]) + "\n", encoding="utf-8")
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "ref_loop.py"), str(tmp_path / "train.jsonl"),
         str(tmp_path / "test.jsonl"), "--model", str(tiny_model), "--schema", str(TICKETS / "schema.json"),
         "--epochs", "2", "--per-step", "3", "--lr", "1e-3", "--max-new-tokens", "4", "--out", str(out)],
        capture_output=True, text=True, timeout=300, check=True)
    assert "torch kernels:" in proc.stdout and "dtype: float32" in proc.stdout  # the CPU line (tellkit.hardware)
    result = json.loads(out.read_text())
    assert result["steps"] == 2 * 3  # ceil(7 / 3) steps per epoch, the last one short
    assert result["mean_lr"] == 1e-3  # constant schedule by default
    assert 0 < result["train_tokens"] <= result["padded_slots"]
    assert set(result["json"]) == {"strict", "lenient", "schema", "field_exact"}
