"""The ``general`` score: loss and perplexity on held-out general data (retention of general ability).

It is computed from the model, not from generated text (``evaluate.runner.general_loss`` runs the
forward passes), so it is not in the text-metric registry; this module turns the per-example
losses into a result shaped like every other metric's, with the per-example losses as ``items``
so comparisons can bootstrap over the same held-out examples, paired between methods.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tellkit.metrics.base import ITEM_RESAMPLES, Statistic, item_mean, score
from tellkit.metrics.bootstrap import bootstrap_ci

NAME = "general"
HIGHER_IS_BETTER = False  # a loss: lower keeps more general ability
BOUNDS = {"loss": (0.0, math.inf), "perplexity": (1.0, math.inf)}


def perplexity_of(losses: np.ndarray) -> float:
    return float(math.exp(np.mean(losses)))


def statistic(score_name: str, result: Mapping[str, Any]) -> Statistic:
    # Perplexity is exp(mean loss), not the mean of per-example perplexities.
    return perplexity_of if score_name == "perplexity" else item_mean


def loss_result(per_example: Sequence[float], seed: int) -> dict[str, Any]:
    """The ``general`` result from per-example mean assistant-token losses."""
    point, low, high = bootstrap_ci(np.asarray(per_example, dtype=float), n_resamples=ITEM_RESAMPLES, seed=seed)
    losses = [float(x) for x in per_example]
    return {"n": len(losses),
            "scores": {"loss": score(point, low, high),
                       "perplexity": score(*(math.exp(x) for x in (point, low, high)))},
            "items": {"loss": losses, "perplexity": losses}}
