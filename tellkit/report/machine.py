"""The line under a study report's verdict that says which machine and precision its numbers came from.

Why: the same grid trains several-fold faster or slower from one CPU to the next (AMX vs AVX-512-bf16 vs
AVX2), and bf16 vs fp32 moves scores in the last digit, so a table without its machine cannot be compared
with another. Read from the trained cells' run.json (what each run recorded), not from this process.
"""

from __future__ import annotations

import json
from pathlib import Path

from .. import allocator


def machine_line(run_dirs: list[Path]) -> str:
    """'Trained on AMD EPYC (avx2/avx512f/avx512_bf16), no GPU; bf16 autocast; torch 2.13.0+cpu,
    malloc mimalloc.' Several values of one field (cells run on different machines) are all named."""
    seen: dict[str, dict[str, None]] = {k: {} for k in ("machine", "precision", "software")}
    for run_dir in run_dirs:
        state_file = Path(run_dir) / "run.json"
        if not state_file.is_file():
            continue
        try:
            state = json.loads(state_file.read_text())
        except (OSError, ValueError):
            continue
        v, train = state.get("versions") or {}, state.get("train") or {}
        seen["machine"][f"{v.get('cpu', 'CPU not recorded')}, {v.get('gpu', 'GPU not recorded')}"] = None
        if "bf16" in train:
            seen["precision"]["bf16 autocast" if train["bf16"] else "fp32"] = None
        seen["software"][f"torch {v.get('torch', '?')}, malloc {allocator.kind(v.get('malloc', ''))}"] = None
    if not seen["machine"]:
        return ""
    return "Trained on " + "; ".join(" / ".join(vals) for vals in seen.values() if vals) + "."
