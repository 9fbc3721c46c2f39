"""Report figures. Each function writes one PNG atomically and returns its path."""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: reports are built on servers without a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tellkit.io import atomic_path  # noqa: E402

DPI = 120
# Applied per call via rc_context so importing this module does not restyle
# other matplotlib users in the same process.
_STYLE = {"font.size": 11, "axes.titlesize": 13, "axes.labelsize": 11, "legend.fontsize": 10}

PathLike = str | os.PathLike[str]


def _styled(fn: Callable[..., Path]) -> Callable[..., Path]:
    @functools.wraps(fn)
    def wrapper(*args, **kwargs) -> Path:
        with plt.rc_context(_STYLE):
            return fn(*args, **kwargs)

    return wrapper


def _save(fig: plt.Figure, path: PathLike) -> Path:
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=DPI, format="png")
    finally:
        plt.close(fig)  # figures are global state in pyplot; leak none
    return Path(path)


def _legend(ax: plt.Axes) -> None:
    if ax.get_legend_handles_labels()[0]:  # avoid the "no artists" warning
        ax.legend()


def _ema(values: np.ndarray, alpha: float) -> np.ndarray:
    """Exponential moving average that steps over NaNs instead of spreading them."""
    out = np.empty_like(values)
    acc = math.nan
    for i, v in enumerate(values):
        if not math.isnan(v):
            acc = v if math.isnan(acc) else alpha * v + (1 - alpha) * acc
        out[i] = acc
    return out


@_styled
def plot_loss_curves(
    curves: dict[str, list[tuple[float, float]]],
    path: PathLike,
    title: str = "Training loss",
    xlabel: str = "optimizer step",
    smoothing: float = 0.0,
) -> Path:
    """One line per run of (x, loss). `smoothing` in [0, 1) is the EMA weight on
    history; when > 0 the raw curve is kept faintly behind the smoothed one."""
    if not 0 <= smoothing < 1:
        raise ValueError(f"smoothing must be in [0, 1); got {smoothing}")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, pts in curves.items():
        if not pts:
            continue
        x, loss = np.asarray(pts, dtype=float).T
        if smoothing > 0:
            (raw,) = ax.plot(x, loss, alpha=0.25, linewidth=1)
            ax.plot(x, _ema(loss, 1 - smoothing), color=raw.get_color(), label=name)
        else:
            ax.plot(x, loss, label=name)
    ax.set(title=title, xlabel=xlabel, ylabel="loss")
    ax.grid(alpha=0.3)
    _legend(ax)
    return _save(fig, path)


@_styled
def plot_task_loss(curves: dict[str, list[tuple[int, int, float]]], path: PathLike, title: str,
                   smoothing: float = 0.6) -> Path:
    """Task-only training loss of several runs on one figure, twice: over optimizer steps and over
    training tokens (a TELL step holds many more tokens than an SFT step). `curves`: name ->
    (step, tokens so far, task loss) for the steps that had task tokens; drawn EMA-smoothed, the
    raw points faint behind, because at high ratios few steps hold task tokens."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for name, pts in curves.items():
        if not pts:
            continue
        step, tokens, loss = np.asarray(pts, dtype=float).T
        for ax, x in zip(axes, (step, tokens)):
            (raw,) = ax.plot(x, loss, ".", alpha=0.25, markersize=3)
            ax.plot(x, _ema(loss, 1 - smoothing), color=raw.get_color(), label=name)
    axes[0].set(xlabel="optimizer step", ylabel="task loss (per supervised token)")
    axes[1].set(xlabel="training tokens")
    for ax in axes:
        ax.grid(alpha=0.3)
    _legend(axes[0])
    fig.suptitle(title)
    return _save(fig, path)


def _column(items: Sequence[dict], key: str) -> np.ndarray:
    """`key` from each dict as floats; absent or None (e.g. no CI for one seed) -> NaN."""
    return np.array([math.nan if d.get(key) is None else float(d[key]) for d in items])


def _err(mean: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    # errorbar wants non-negative distances; a missing CI draws no bar.
    return np.nan_to_num(np.clip(np.vstack([mean - low, high - mean]), 0, None))


@_styled
def plot_metric_bars(
    rows: dict[str, dict], metric: str, path: PathLike, title: str | None = None,
    bounds: tuple[float, float] | None = None,
) -> Path:
    """Bars of mean `metric` per method with asymmetric CI error bars; finite `bounds` (what the
    score can be, e.g. (0, 1)) fix the y axis to them, with room for the labels."""
    names = list(rows)
    mean, low, high = (_column(list(rows.values()), k) for k in ("mean", "ci_low", "ci_high"))
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(names) + 2), 4.5))
    xs = np.arange(len(names))
    bars = ax.bar(xs, np.nan_to_num(mean), yerr=_err(mean, low, high), capsize=4,
                  color=[f"C{i % 10}" for i in range(len(names))])
    # Labels sit above the error bar (or the bar when the CI is missing).
    tops = np.nan_to_num(np.fmax(mean, high))
    for bar, m, top, name in zip(bars, mean, tops, names):
        n = rows[name].get("n_seeds")
        label = ("–" if math.isnan(m) else f"{m:.3f}") + ("" if n is None else f"\n(n={n})")
        ax.annotate(label, (bar.get_x() + bar.get_width() / 2, top), xytext=(0, 3),
                    textcoords="offset points", ha="center", va="bottom", fontsize=9)
    ax.set_xticks(xs, names, rotation=20 if len(names) > 4 else 0)
    ax.set(title=title or metric, ylabel=metric)
    _bounded_y(ax, bounds)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def _bounded_y(ax: plt.Axes, bounds: tuple[float, float] | None, room: float = 0.15, below: float = 0.0) -> None:
    """A bounded score's axis shows its whole range, not negative proportions around a zero bar
    (`room` above it for labels, `below` under it so markers on the bound are not cut in half)."""
    if bounds and all(math.isfinite(b) for b in bounds):
        lo, hi = bounds
        ax.set_ylim(lo - below * (hi - lo), hi + room * (hi - lo))


def _banded_lines(ax: plt.Axes, series: dict[str, list[dict]]) -> None:
    """Mean line per series with a shaded CI band across seeds."""
    for name, pts in series.items():
        pts = sorted(pts, key=lambda p: float(p["x"]))
        if not pts:
            continue
        x = _column(pts, "x")
        (line,) = ax.plot(x, _column(pts, "mean"), marker="o", label=name)
        ax.fill_between(x, _column(pts, "ci_low"), _column(pts, "ci_high"),
                        color=line.get_color(), alpha=0.2, linewidth=0)
    _legend(ax)
    ax.grid(alpha=0.3)


@_styled
def plot_ratio_curves(
    series: dict[str, list[dict]],
    metric: str,
    path: PathLike,
    xlabel: str = "general:task ratio (tokens)",
) -> Path:
    """`metric` vs general:task token ratio, one banded line per series."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    _banded_lines(ax, series)
    # Ratios span orders of magnitude but ratio 0 (no general data) is the key
    # baseline, which a log axis cannot show; symlog is linear on [-1, 1].
    ax.set_xscale("symlog", linthresh=1)
    ax.set(title=f"{metric} vs mixing ratio", xlabel=xlabel, ylabel=metric)
    return _save(fig, path)


@_styled
def plot_scale_curves(series: dict[str, list[dict]], metric: str, path: PathLike) -> Path:
    """`metric` vs number of task tokens (log x), one banded line per method."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    _banded_lines(ax, series)
    ax.set_xscale("log")
    ax.set(title=f"{metric} vs task data size", xlabel="task tokens", ylabel=metric)
    return _save(fig, path)


@_styled
def plot_tsne(points: np.ndarray, groups: Sequence[str], path: PathLike, title: str) -> Path:
    """2-D scatter of `points` (n, 2), one colour per group label."""
    points = np.asarray(points, dtype=float)
    labels = np.asarray(groups)
    if points.ndim != 2 or points.shape[1] != 2 or len(labels) != len(points):
        raise ValueError(f"need (n, 2) points and n groups; got {points.shape}, {len(labels)}")
    fig, ax = plt.subplots(figsize=(6, 5.5))
    for group in dict.fromkeys(groups):  # first-seen order keeps colours stable
        sel = labels == group
        ax.scatter(points[sel, 0], points[sel, 1], s=14, alpha=0.75, label=group)
    ax.set(title=title, xlabel="t-SNE 1", ylabel="t-SNE 2")
    _legend(ax)
    return _save(fig, path)


@_styled
def plot_score_vs_general(
    points: Sequence[dict], metric: str, path: PathLike, title: str | None = None,
    bounds: tuple[float, float] | None = None,
    xlabel: str = "held-out general loss, same source as the general mix (lower keeps more)",
    budget: float | None = None, budget_label: str = "forgetting budget",
) -> Path:
    """The trade-off: task `metric` (y) against a general-ability measure (x): held-out general loss, or
    (the Pareto plot of a verdict) a general score out of distribution.

    `points`: dicts with "method", "score", "general" and an optional "label" (e.g. "r=10"); one
    point per method x ratio, a method's points joined in the given order. The "base" point is a
    black star with dotted guides through it, so "better on the task" (above) and "keeps general
    ability" (the side of the guide the x label names) read off directly. `budget`: the x beyond
    which a method breaks the forgetting budget, drawn as a red line with that side shaded.
    `bounds` as in plot_metric_bars."""
    fig, ax = plt.subplots(figsize=(7, 5))
    methods = list(dict.fromkeys(p["method"] for p in points))
    for i, method in enumerate(m for m in methods if m != "base"):
        pts = [p for p in points if p["method"] == method]
        x, y = _column(pts, "general"), _column(pts, "score")
        ax.plot(x, y, marker="o", color=f"C{i % 10}", label=method, alpha=0.9)
        for p, xi, yi in zip(pts, x, y):
            if p.get("label") and not (math.isnan(xi) or math.isnan(yi)):
                ax.annotate(p["label"], (xi, yi), xytext=(4, 4), textcoords="offset points", fontsize=8)
    for p in (p for p in points if p["method"] == "base"):
        ax.scatter([p["general"]], [p["score"]], marker="*", s=220, color="black", zorder=5, label="base")
        ax.axvline(p["general"], color="black", linestyle=":", linewidth=1)
        ax.axhline(p["score"], color="black", linestyle=":", linewidth=1)
    ax.set(title=title or f"{metric} vs general ability", xlabel=xlabel, ylabel=metric)
    _bounded_y(ax, bounds, room=0.04, below=0.04)
    ax.margins(x=0.08)  # room for the ratio labels of the outermost points
    if budget is not None and math.isfinite(budget):
        base_x = next((p["general"] for p in points if p["method"] == "base"), None)
        lo, hi = ax.get_xlim()
        ax.set_xlim(min(lo, budget - 0.05 * (hi - lo)), max(hi, budget + 0.05 * (hi - lo)))
        lo, hi = ax.get_xlim()
        over = (lo, budget) if base_x is None or budget <= base_x else (budget, hi)
        ax.axvspan(*over, color="red", alpha=0.07, linewidth=0)
        ax.axvline(budget, color="red", linestyle="--", linewidth=1.2, label=budget_label)
    ax.grid(alpha=0.3)
    _legend(ax)
    return _save(fig, path)
