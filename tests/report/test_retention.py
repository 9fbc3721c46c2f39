import math

import pytest

from tellkit.metrics import compute, general
from tellkit.report import plots
from tellkit.report.retention import (
    compare_changes,
    fmt_change,
    sweep_points,
    sweep_section,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _row(method, ratio, seed, strict, loss, t=1000):
    return {"method": method, "task_tokens": t, "ratio": ratio, "seed": seed, "json/strict": strict,
            "general/loss": loss}


def test_sweep_points_average_seeds_and_subtract_base():
    rows = [_row("tell", 10, 0, 0.4, 1.7), _row("tell", 10, 1, 0.6, 1.9), _row("sft-matched", 10, 0, 0.9, 2.6),
            _row("base", 0, 0, 0.0, 1.6), _row("base", 0, 1, 0.0, 1.6), _row("tell", 30, 0, 0.7, None)]
    pts = sweep_points(rows, "json/strict")[1000]
    by = {(p["method"], p["ratio"]): p for p in pts}
    assert set(by) == {("tell", 10.0), ("sft-matched", 10.0), ("base", 0.0)}  # no general loss: left out
    assert by[("tell", 10.0)]["score"] == pytest.approx(0.5) and by[("tell", 10.0)]["seeds"] == 2
    assert by[("tell", 10.0)]["change"] == pytest.approx(0.2) and by[("sft-matched", 10.0)]["change"] == pytest.approx(1.0)
    assert by[("base", 0.0)]["change"] == 0.0


def test_sweep_section_writes_table_and_plot(tmp_path):
    rows = [_row("tell", r, 0, 0.1 * r, 1.6 + 0.01 * r) for r in (0, 10, 30)] + [_row("base", 0, 0, 0.0, 1.6)]
    md = "\n".join(sweep_section(rows, "json/strict", tmp_path))
    assert "## Held-out general loss (same source as the general mix)" in md and "| change from base |" in md
    assert "+0.300" in md and "in-distribution" in md
    assert "| base | – | – |" in md  # evaluated once: no ratio, no seed count
    assert (tmp_path / "retention_t1000.png").read_bytes().startswith(PNG_MAGIC)
    assert sweep_section([{**r, "general/loss": None} for r in rows], "json/strict", tmp_path) == []


def test_compare_changes_are_paired_against_base():
    base = {"general": general.loss_result([1.0, 2.0, 1.5, 1.2], seed=0)}
    tell = {"general": general.loss_result([1.1, 2.1, 1.6, 1.3], seed=0)}
    cells = [{"method": "tell", "metrics": tell}, {"method": "base", "metrics": base}]
    d = compare_changes(cells, ["tell", "base"])["tell"]
    assert d["mean_diff"] == pytest.approx(0.1) and d["ci_low"] == pytest.approx(0.1)  # same shift on every item
    assert fmt_change(d) == "+0.100 [+0.100, +0.100]"
    assert compare_changes(cells, ["tell"]) == {}  # no base: nothing to subtract
    no_general = [{"method": m, "metrics": compute(["json"], ["x"], ['{"a": 1}'])} for m in ("tell", "base")]
    assert compare_changes(no_general, ["tell", "base"]) == {}


def test_plot_score_vs_general(tmp_path):
    points = [{"method": "tell", "label": f"r={r}", "score": 0.1 * r, "general": 1.6 + 0.01 * r} for r in (0, 10, 30)]
    points += [{"method": "sft-matched", "label": "r=10", "score": 0.9, "general": math.nan},
               {"method": "base", "score": 0.0, "general": 1.6}]
    out = plots.plot_score_vs_general(points, "json/strict", tmp_path / "r.png")
    assert out.read_bytes().startswith(PNG_MAGIC) and out.stat().st_size > 1000
