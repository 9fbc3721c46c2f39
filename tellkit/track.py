"""Experiment tracking: `train.report_to` through the HF Trainer's own integrations.

The Trainer's TensorBoard / MLflow / W&B callbacks log losses and the learning rate while a run
trains; tellkit adds a run name, tags (method, ratio, scale, seed, so compare and sweep cells are
separate, filterable runs) and, after evaluation, the final scores. Nothing is logged unless
`train.report_to` names a tracker. Where the trackers write is theirs to decide (MLFLOW_TRACKING_URI,
WANDB_MODE, ...); TensorBoard event files go to ``<run>/tensorboard``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from pathlib import Path

from .config import Config
from .errors import ConfigError

log = logging.getLogger(__name__)

PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}  # tracker -> module it needs


def check_trackers(cfg: Config) -> None:
    """Fail before training when a tracker's package is missing (the Trainer would fail mid-setup)."""
    missing = [t for t in cfg.train.report_to if importlib.util.find_spec(PACKAGES[t]) is None]
    if missing:
        raise ConfigError(f"train.report_to={missing} needs `pip install {' '.join(PACKAGES[t] for t in missing)}` "
                          "(or remove it from train.report_to)")


def run_tags(cfg: Config) -> dict[str, str]:
    """What tells one compare/sweep cell from another."""
    return {"tellkit.method": cfg.mix.method, "tellkit.ratio": f"{cfg.mix.ratio:g}",
            "tellkit.scale": str(cfg.task.token_budget or "all"), "tellkit.seed": str(cfg.train.seed),
            "tellkit.model": cfg.model.name}


def tracking_args(cfg: Config, out: Path) -> dict:
    """TrainingArguments keyword arguments for `cfg.train.report_to` (``report_to="none"`` when empty)."""
    trackers = list(cfg.train.report_to)
    if not trackers:
        return {"report_to": "none"}
    tags = run_tags(cfg) | {"tellkit.run_dir": str(Path(out).resolve())}
    # The callbacks read these when the Trainer is built, right after these arguments: set per run, so
    # every cell of a compare or sweep in one process gets its own tags and folder.
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(Path(out) / "tensorboard")
    os.environ["MLFLOW_TAGS"] = json.dumps(tags)
    os.environ["WANDB_TAGS"] = ",".join(f"{k.removeprefix('tellkit.')}={v}" for k, v in tags.items()
                                        if k != "tellkit.run_dir")
    return {"report_to": trackers, "run_name": run_name(cfg, out)}


def run_name(cfg: Config, out: Path) -> str:
    m = cfg.mix
    return f"{Path(out).name}-{m.method}-r{m.ratio:g}-s{cfg.train.seed}"


def log_final_scores(run_dir: str | Path, cfg: Config, result: dict) -> None:
    """Send a finished evaluation's scores to the trackers the run trained with (no-op without any)."""
    trackers = list(cfg.train.report_to)
    if not trackers:
        return
    metrics = {f"final/{metric}/{name}": float(v["value"])
               for metric, res in result.get("metrics", {}).items() for name, v in res.get("scores", {}).items()}
    run_dir = Path(run_dir)
    if "tensorboard" in trackers:
        from torch.utils.tensorboard import SummaryWriter

        with SummaryWriter(log_dir=str(run_dir / "tensorboard")) as w:
            for key, value in metrics.items():
                w.add_scalar(key, value, 0)
    if "mlflow" in trackers:
        _mlflow_scores(run_dir, metrics)
    if "wandb" in trackers:
        log.warning("tellkit: final scores are not sent to W&B (they are in %s/eval/scores.json)", run_dir)


def _mlflow_scores(run_dir: Path, metrics: dict[str, float]) -> None:
    import mlflow

    tag = "'" + str(run_dir.resolve()).replace("'", "\\'") + "'"  # the tag training set (tracking_args)
    runs = mlflow.search_runs(search_all_experiments=True, filter_string=f"tags.`tellkit.run_dir` = {tag}",
                              order_by=["attributes.start_time DESC"], max_results=1, output_format="list")
    if not runs:
        log.warning("tellkit: no MLflow run tagged with %s; final scores not logged there", run_dir)
        return
    with mlflow.start_run(run_id=runs[0].info.run_id):
        mlflow.log_metrics(metrics)
