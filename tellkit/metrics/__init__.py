"""Evaluation metrics: a registry of pure functions over predictions and references.

``compute(["json", "chrf"], predictions, references, options)`` returns, per
metric, ``{"n": int, "scores": {name: {"value", "ci_low", "ci_high"}}, ...extra}``
with 95% bootstrap CIs. ``options`` is one flat mapping shared by all
requested metrics; each metric reads its own keys (see ``METRICS[name].options``)
and unknown keys are rejected so a typo cannot silently fall back to a default.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from tellkit.errors import ConfigError, DataError
from tellkit.metrics import bleurt_metric, json_metric, label_metric, sacrebleu_metric
from tellkit.metrics.base import Metric

__all__ = ["METRICS", "Metric", "available", "compute", "options_from"]

METRICS: dict[str, Metric] = {
    json_metric.METRIC.name: json_metric.METRIC,
    label_metric.METRIC.name: label_metric.METRIC,
    **sacrebleu_metric.METRICS,
    bleurt_metric.METRIC.name: bleurt_metric.METRIC,
}


def options_from(eval_cfg) -> dict[str, Any]:
    """The metric options an `eval:` config section sets (unset ones left to each metric's default)."""
    e = eval_cfg
    options = {"label_field": e.label_field, "positive_label": e.positive_label, "json_schema": e.json_schema,
               "doc_level": e.doc_level, "max_doc_tokens": e.max_doc_tokens, "bleurt_checkpoint": e.bleurt_checkpoint}
    return {k: v for k, v in options.items() if v is not None}


def available() -> list[str]:
    """Names of all registered metrics, sorted."""
    return sorted(METRICS)


def _did_you_mean(name: str, allowed: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, allowed, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_names(names: Sequence[str]) -> None:
    for name in names:
        if name not in METRICS:
            raise ConfigError(
                f"unknown metric {name!r}{_did_you_mean(name, available())}; allowed: {', '.join(available())}"
            )


def _check_options(options: Mapping[str, Any]) -> None:
    known = sorted(set().union(*(m.options for m in METRICS.values())))
    for key in options:
        if key not in known:
            raise ConfigError(f"unknown metric option {key!r}{_did_you_mean(key, known)}; allowed: {', '.join(known)}")


def compute(
    names: list[str],
    predictions: list[str],
    references: list[str],
    options: dict[str, Any] | None = None,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Run the named metrics; returns ``{metric_name: result}`` in the order requested.

    ``seed`` fixes the bootstrap resampling, so the same inputs always give the same CIs.
    """
    options = options or {}
    _check_names(names)
    _check_options(options)
    if len(predictions) != len(references):
        raise DataError(
            f"{len(predictions)} predictions but {len(references)} references; "
            "each prediction needs exactly one reference"
        )
    if not predictions:
        raise DataError("no predictions to evaluate; check that the evaluation set is not empty")
    return {name: METRICS[name].fn(predictions, references, options, seed) for name in dict.fromkeys(names)}
