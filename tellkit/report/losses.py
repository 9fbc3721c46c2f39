"""Training-loss curves read back from runs' loss_log.json: overall, and the task examples alone.

At a TELL ratio of 10-1000 the overall curve is almost all general data and says little about the
task; the task-only curve (logged per step from the same forward pass, tellkit/train/trainer.py)
does. Steps without task tokens have no task loss: they are left out, not drawn as 0.
"""

from __future__ import annotations

import json
from pathlib import Path

from .plots import plot_loss_curves, plot_task_loss

SMOOTHING = 0.6
SMOOTHING_NOTE = (f"Curves are smoothed (EMA, weight {SMOOTHING} on history), the raw values faint behind; the "
                  "task-only curve has a point only for steps that held task tokens.")


def read_log(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "loss_log.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else []


def run_series(records: list[dict], name: str) -> dict[str, list[tuple[int, float]]]:
    """One run's loss curve, and its task-only curve when the run also trained on general data."""
    series = {name: [(r["step"], r["loss"]) for r in records]}
    task = [(r["step"], r["task_loss"]) for r in records if r.get("task_loss") is not None]
    if task and any(r.get("general_tokens") for r in records):  # without general data they are one curve
        series[f"{name}: task only"] = task
    return series


def task_points(records: list[dict]) -> list[tuple[int, int, float]]:
    return [(r["step"], r["tokens"], r["task_loss"]) for r in records if r.get("task_loss") is not None]


def write_run_loss_plot(run_dir: Path, name: str) -> bool:
    records = read_log(run_dir)
    if records:
        plot_loss_curves(run_series(records, name), run_dir / "loss.png", smoothing=SMOOTHING)
    return bool(records)


def write_method_plots(runs: dict[str, str | Path], out: Path, what: str, suffix: str = "") -> list[str]:
    """Overall loss curves and the task-loss overlay of several methods' runs (name -> run folder),
    as loss_curves{suffix}.png and task_loss{suffix}.png; returns the report's Markdown lines."""
    logs = {name: read_log(d) for name, d in runs.items()}
    logs = {k: v for k, v in logs.items() if v}
    if not logs:
        return []
    plot_loss_curves({k: [(r["step"], r["loss"]) for r in v] for k, v in logs.items()}, out / f"loss_curves{suffix}.png",
                     title=f"Training loss ({what})", smoothing=SMOOTHING)
    md = [f"![loss curves](loss_curves{suffix}.png)", ""]
    task = {k: task_points(v) for k, v in logs.items()}
    if any(task.values()):
        plot_task_loss(task, out / f"task_loss{suffix}.png", title=f"Task loss by method ({what})",
                       smoothing=SMOOTHING)
        md += [f"![task loss](task_loss{suffix}.png)", ""]
    return md + [SMOOTHING_NOTE, ""]
