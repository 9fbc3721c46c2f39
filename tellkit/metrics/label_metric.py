"""The ``label`` metric: a class label read from one field of a JSON answer.

Used for the hallucination-detection task, where the model answers e.g.
``{"hallucination": "yes", ...}``.

Parsing is deliberately unforgiving about *missing* labels: if the output
cannot be parsed (leniently, see ``jsonparse``) or lacks the field, the item
has no predicted label. It is never replaced by a guess such as the majority
class or a keyword search, because a guess would credit the model with
answers it did not give. Such an item is counted once in ``unparseable``, is
wrong for accuracy, and is a not-positive prediction for precision/recall
(a false negative when the gold label is positive, never a true positive).

Labels are compared after ``str(value).strip().lower()``. The paper's
released scoring scripts mapped every "yes" to "no"; the tests pin that
"yes" in any casing survives as "yes".

Options: ``label_field`` (default ``"hallucination"``), ``positive_label``
(default ``"yes"``).

``items``: each item's 0/1 correctness (accuracy) and its (predicted positive,
gold positive) pair, from which precision/recall/F1 are recomputed on any
resample of the items.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from tellkit.errors import DataError
from tellkit.metrics.base import (
    Metric,
    Statistic,
    indexed_score,
    item_mean,
    item_rows,
    mean_score,
    option,
)
from tellkit.metrics.jsonparse import parse_lenient


def _non_empty_str(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def normalise_label(value: Any) -> str:
    return str(value).strip().lower()


def predicted_label(output: str, field: str) -> str | None:
    """The label in ``output``'s JSON field, or None when there is none to read."""
    obj = parse_lenient(output)
    if obj is None:
        return None
    value = obj.get(field)
    # null, nested objects/lists and empty strings are not labels.
    if value is None or isinstance(value, (dict, list)) or normalise_label(value) == "":
        return None
    return normalise_label(value)


def gold_label(reference: str, field: str, index: int) -> str:
    """The gold label: ``field`` of a JSON object reference, or the reference itself if it is a bare label."""
    try:
        parsed = json.loads(reference)
    except json.JSONDecodeError:
        parsed = reference  # bare label such as: yes
    if isinstance(parsed, dict):
        if field not in parsed:
            raise DataError(
                f"references[{index}] has no field {field!r}; "
                "set options.label_field to the gold JSON key holding the label"
            )
        parsed = parsed[field]
    label = normalise_label(parsed)
    if not label:
        raise DataError(f"references[{index}] has an empty gold label; every reference needs a label")
    return label


def _precision(pred_pos: np.ndarray, gold_pos: np.ndarray) -> float:
    predicted = pred_pos.sum()
    return float((pred_pos & gold_pos).sum() / predicted) if predicted else 0.0


def _recall(pred_pos: np.ndarray, gold_pos: np.ndarray) -> float:
    actual = gold_pos.sum()
    return float((pred_pos & gold_pos).sum() / actual) if actual else 0.0


def _f1(pred_pos: np.ndarray, gold_pos: np.ndarray) -> float:
    # 2TP / (2TP + FP + FN): equal to 2PR/(P+R), and 0 (not 0/0) when there are no positives at all.
    tp = (pred_pos & gold_pos).sum()
    denominator = pred_pos.sum() + gold_pos.sum()
    return float(2 * tp / denominator) if denominator else 0.0


def compute_label(
    predictions: Sequence[str], references: Sequence[str], options: Mapping[str, Any], seed: int
) -> dict[str, Any]:
    field = option(options, "label_field", "hallucination", _non_empty_str, "a non-empty string (a JSON key)")
    positive = normalise_label(option(options, "positive_label", "yes", _non_empty_str, "a non-empty string"))
    preds = [predicted_label(p, field) for p in predictions]
    golds = [gold_label(r, field, i) for i, r in enumerate(references)]

    correct = np.array([p is not None and p == g for p, g in zip(preds, golds)])
    pred_pos = np.array([p == positive for p in preds], dtype=bool)
    gold_pos = np.array([g == positive for g in golds], dtype=bool)
    n = len(preds)

    def on(fn: Callable[[np.ndarray, np.ndarray], float]) -> Callable[[np.ndarray], float]:
        return lambda idx: fn(pred_pos[idx], gold_pos[idx])  # score the resampled items at idx

    scores = {
        "accuracy": mean_score(correct, seed),
        "precision": indexed_score(n, on(_precision), seed),
        "recall": indexed_score(n, on(_recall), seed),
        "f1": indexed_score(n, on(_f1), seed),
    }
    pairs = item_rows(np.stack([pred_pos, gold_pos], axis=1))
    items = {"accuracy": item_rows(correct), "precision": pairs, "recall": pairs, "f1": pairs}
    # Positive-class view: an unparseable item predicted "not positive", so with
    # a negative gold label it lands in tn, even though accuracy counts it wrong.
    confusion = {
        "tp": int((pred_pos & gold_pos).sum()),
        "fp": int((pred_pos & ~gold_pos).sum()),
        "fn": int((~pred_pos & gold_pos).sum()),
        "tn": int((~pred_pos & ~gold_pos).sum()),
    }
    return {
        "n": n,
        "scores": scores,
        "items": items,
        "unparseable": sum(p is None for p in preds),
        "confusion": confusion,
        "positive_label": positive,
        "label_field": field,
    }


_OF_PAIRS = {"precision": _precision, "recall": _recall, "f1": _f1}


def label_statistic(score: str, result: Mapping[str, Any]) -> Statistic:
    if score not in _OF_PAIRS:
        return item_mean
    fn = _OF_PAIRS[score]
    return lambda rows: fn(rows[:, 0] > 0.5, rows[:, 1] > 0.5)  # rows come back as floats


METRIC = Metric(
    name="label",
    fn=compute_label,
    description="accuracy and positive-class precision/recall/F1 of a label read from a JSON field",
    options=frozenset({"label_field", "positive_label"}),
    statistic=label_statistic,
)
