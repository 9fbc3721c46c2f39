import math
import os

import numpy as np
import pytest

from tellkit.report import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NAN = math.nan


def _assert_png(path, folder):
    assert path.read_bytes().startswith(PNG_MAGIC)
    assert path.stat().st_size > 1000
    assert [p for p in os.listdir(folder) if ".tmp" in p] == []


def test_loss_curves(tmp_path):
    curves = {
        "tell": [(0, 2.0), (1, 1.5), (2, NAN), (3, 1.0)],
        "sft": [(0, 2.1), (2, 1.8)],
        "empty": [],
    }
    for smoothing in (0.0, 0.6):
        out = plots.plot_loss_curves(curves, tmp_path / f"loss{smoothing}.png", smoothing=smoothing)
        _assert_png(out, tmp_path)
    with pytest.raises(ValueError):
        plots.plot_loss_curves(curves, tmp_path / "bad.png", smoothing=1.0)


def test_ema_skips_nan():
    out = plots._ema(np.array([NAN, 1.0, NAN, 3.0]), alpha=0.5)
    assert math.isnan(out[0])
    np.testing.assert_allclose(out[1:], [1.0, 1.0, 2.0])


def test_metric_bars_with_nan(tmp_path):
    rows = {
        "tell": {"mean": 0.8, "ci_low": 0.7, "ci_high": 0.85, "n_seeds": 3},
        "sft": {"mean": 0.6, "ci_low": NAN, "ci_high": NAN, "n_seeds": 1},
        "broken": {"mean": NAN, "ci_low": NAN, "ci_high": NAN, "n_seeds": 0},
        "no_ci": {"mean": 0.3, "ci_low": None, "ci_high": None},
    }
    out = plots.plot_metric_bars(rows, "accuracy", tmp_path / "bars.png")
    _assert_png(out, tmp_path)


def test_ratio_curves_include_zero(tmp_path):
    pts = [
        {"x": 0, "mean": 0.5, "ci_low": 0.4, "ci_high": 0.6},
        {"x": 1, "mean": 0.6, "ci_low": 0.5, "ci_high": 0.7},
        {"x": 100, "mean": 0.8, "ci_low": NAN, "ci_high": NAN},
        {"x": 10, "mean": NAN, "ci_low": NAN, "ci_high": NAN},
    ]
    out = plots.plot_ratio_curves({"tell": pts, "none": []}, "accuracy", tmp_path / "ratio.png")
    _assert_png(out, tmp_path)


def test_scale_curves(tmp_path):
    def point(tokens, v):
        return {"x": tokens, "mean": v, "ci_low": v - 0.05, "ci_high": v + 0.05}

    series = {
        m: [point(t, v) for t, v in zip([1e3, 1e4, 1e5], vals)]
        for m, vals in {"TELL": [0.5, 0.7, 0.8], "SFT": [0.1, NAN, 0.6]}.items()
    }
    _assert_png(plots.plot_scale_curves(series, "accuracy", tmp_path / "scale.png"), tmp_path)


def test_tsne_plot(tmp_path):
    pts = np.random.default_rng(0).normal(size=(30, 2))
    groups = ["task"] * 10 + ["general"] * 20
    _assert_png(plots.plot_tsne(pts, groups, tmp_path / "tsne.png", "t-SNE"), tmp_path)
    with pytest.raises(ValueError):
        plots.plot_tsne(pts, groups[:-1], tmp_path / "bad.png", "t-SNE")


def test_import_does_not_restyle_matplotlib():
    import matplotlib

    assert matplotlib.get_backend().lower() == "agg"
    assert matplotlib.rcParams["axes.titlesize"] != plots._STYLE["axes.titlesize"]
