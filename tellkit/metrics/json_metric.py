"""The ``json`` metric: is the output usable JSON, and are its fields right?

Scores (each a fraction of items, with a bootstrap CI; ``items`` keeps each
item's 0/1 outcome, and for ``field_exact`` its per-field hits and presence):

* ``strict``: the output is exactly one JSON object (see ``jsonparse``).
* ``lenient``: a JSON object is recoverable by the documented repair. Kept
  separate from ``strict`` because a pipeline that calls ``json.loads`` only
  benefits from the strict rate; the gap shows how much is formatting noise.
* ``schema`` (only with ``options["json_schema"]``): the *strictly* parsed
  object validates against the schema.
* ``field_exact``: for each key of the gold object, the fraction of items
  whose leniently parsed prediction has an equal value; the mean over keys.
  Lenient here because field accuracy should measure content, not format
  (format is what ``strict`` measures). Extra keys in the prediction are
  ignored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from jsonschema import SchemaError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for

from tellkit.errors import ConfigError, DataError
from tellkit.metrics.base import (
    Metric,
    Statistic,
    indexed_score,
    item_mean,
    item_rows,
    mean_score,
)
from tellkit.metrics.jsonparse import parse_lenient, parse_strict


def load_schema_validator(schema: dict[str, Any] | str | Path | None,
                          what: str = "options.json_schema") -> Validator | None:
    """A validator for ``options["json_schema"]`` (a schema dict or a path to a .json file); errors
    name the setting as `what` (validate passes "eval.json_schema")."""
    if schema is None:
        return None
    if isinstance(schema, (str, Path)):
        path = Path(schema)
        if not path.is_file():
            raise ConfigError(
                f"{what}: schema file {path} does not exist; "
                "give a path to a JSON Schema .json file or the schema itself as a mapping"
            )
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{what}: {path} is not valid UTF-8 JSON ({exc}); fix the schema file") from exc
    if not isinstance(schema, dict):
        raise ConfigError(
            f"{what} must be a JSON Schema object (mapping) or a path to one, got {type(schema).__name__}"
        )
    cls = validator_for(schema)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        where = f" ({schema_path})" if (schema_path := "/".join(map(str, exc.path))) else ""
        raise ConfigError(f"{what} is not a valid JSON Schema: {exc.message}{where}; fix the schema") from exc
    return cls(schema)


def _parse_gold(text: str, index: int) -> dict[str, Any]:
    gold = parse_strict(text)
    if gold is None:
        raise DataError(
            f"references[{index}] is not a JSON object ({text[:60]!r}); "
            "the json metric needs each gold answer to be a JSON object string"
        )
    return gold


def _normalise(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def values_match(predicted: Any, gold: Any) -> bool:
    """Field equality: strings compared case- and whitespace-insensitively, others exactly.

    ``True == 1`` in Python, but a JSON ``true`` is not the number 1, so a
    bool only matches a bool.
    """
    if isinstance(predicted, bool) != isinstance(gold, bool):
        return False
    return _normalise(predicted) == _normalise(gold)


def _mean_field_accuracy(hits: np.ndarray, has: np.ndarray) -> float:
    counts = has.sum(axis=0)
    present = counts > 0  # a resample may contain no item with a rare field
    return float((hits.sum(axis=0)[present] / counts[present]).mean())


def compute_json(
    predictions: Sequence[str], references: Sequence[str], options: Mapping[str, Any], seed: int
) -> dict[str, Any]:
    validator = load_schema_validator(options.get("json_schema"))
    golds = [_parse_gold(ref, i) for i, ref in enumerate(references)]
    strict = [parse_strict(p) for p in predictions]
    lenient = [parse_lenient(p) for p in predictions]
    n = len(predictions)

    strict_ok = np.array([obj is not None for obj in strict])
    lenient_ok = np.array([obj is not None for obj in lenient])
    scores = {"strict": mean_score(strict_ok, seed), "lenient": mean_score(lenient_ok, seed)}
    items: dict[str, list] = {"strict": item_rows(strict_ok), "lenient": item_rows(lenient_ok)}
    extra: dict[str, Any] = {
        "strict_failures": int(n - strict_ok.sum()),
        "lenient_failures": int(n - lenient_ok.sum()),
    }
    if validator is not None:
        schema_ok = np.array([obj is not None and validator.is_valid(obj) for obj in strict])
        scores["schema"] = mean_score(schema_ok, seed)
        items["schema"] = item_rows(schema_ok)
        extra["schema_failures"] = int(n - schema_ok.sum())

    fields = list(dict.fromkeys(key for gold in golds for key in gold))
    has = np.array([[key in gold for key in fields] for gold in golds], dtype=bool).reshape(n, len(fields))
    hits = np.array(
        [
            [key in gold and pred is not None and key in pred and values_match(pred[key], gold[key]) for key in fields]
            for gold, pred in zip(golds, lenient)
        ],
        dtype=bool,
    ).reshape(n, len(fields))
    extra["per_field"] = {
        key: {**mean_score(hits[has[:, j], j], seed), "n": int(has[:, j].sum())} for j, key in enumerate(fields)
    }
    if fields:  # all-empty gold objects have no fields to match
        scores["field_exact"] = indexed_score(n, lambda idx: _mean_field_accuracy(hits[idx], has[idx]), seed)
        items["field_exact"] = item_rows(np.hstack([hits, has]))  # row: hits of each field, then presence
    return {"n": n, "scores": scores, "items": items, **extra}


def _field_exact_of_rows(rows: np.ndarray) -> float:
    k = rows.shape[1] // 2
    return _mean_field_accuracy(rows[:, :k], rows[:, k:])


def json_statistic(score: str, result: Mapping[str, Any]) -> Statistic:
    return _field_exact_of_rows if score == "field_exact" else item_mean


METRIC = Metric(
    name="json",
    fn=compute_json,
    description="JSON validity (strict / lenient / schema) and per-field exact match against a gold JSON object",
    options=frozenset({"json_schema"}),
    statistic=json_statistic,
)
