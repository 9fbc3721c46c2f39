"""The optional ``bleurt`` metric (mean BLEURT score over items, with a bootstrap CI).

Runs a local PyTorch BLEURT checkpoint through the ``bleurt-pytorch``
package. Nothing is downloaded: ``options["bleurt_checkpoint"]`` must be a
directory that ``BleurtForSequenceClassification.from_pretrained`` accepts
(e.g. a copy of lucadiliello/BLEURT-20-D12). ``options["bleurt_batch_size"]``
(default 16) bounds memory.

The package and torch are imported only when the metric runs, so the rest of
the metrics library works without them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tellkit.errors import ConfigError, ModelError, TellkitError
from tellkit.metrics.base import Metric, is_positive_int, mean_score, option


def _checkpoint_dir(options: Mapping[str, Any]) -> Path:
    raw = options.get("bleurt_checkpoint")
    if raw is None:
        raise ConfigError(
            "metric 'bleurt' needs options.bleurt_checkpoint: the path to a local BLEURT PyTorch "
            "checkpoint directory (nothing is downloaded)"
        )
    path = Path(raw).expanduser()
    if not path.is_dir():
        raise ConfigError(
            f"options.bleurt_checkpoint: {path} is not a directory; point it at a local BLEURT PyTorch "
            "checkpoint (config.json + weights + vocab)"
        )
    return path


def _import_bleurt() -> tuple[Any, Any]:
    try:
        from bleurt_pytorch import BleurtForSequenceClassification, BleurtTokenizer
    except ModuleNotFoundError as exc:
        raise TellkitError(
            "metric 'bleurt' needs the bleurt-pytorch package: pip install bleurt-pytorch "
            "(or drop 'bleurt' from the metrics)"
        ) from exc
    except ImportError as exc:
        # bleurt-pytorch 0.0.1 imports transformers internals removed in transformers 5.
        raise TellkitError(
            f"bleurt-pytorch is installed but cannot be imported ({exc}); it is likely incompatible with "
            "the installed transformers: pip install -U bleurt-pytorch, or drop 'bleurt' from the metrics"
        ) from exc
    return BleurtForSequenceClassification, BleurtTokenizer


def compute_bleurt(
    predictions: Sequence[str], references: Sequence[str], options: Mapping[str, Any], seed: int
) -> dict[str, Any]:
    checkpoint = _checkpoint_dir(options)
    batch_size = option(options, "bleurt_batch_size", 16, is_positive_int, "a positive integer")
    model_cls, tokenizer_cls = _import_bleurt()
    import torch

    try:
        # safetensors only, like every model tellkit loads: a pickled checkpoint can run code when loaded
        model = model_cls.from_pretrained(str(checkpoint), use_safetensors=True)
        tokenizer = tokenizer_cls.from_pretrained(str(checkpoint))
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"could not load a BLEURT checkpoint from {checkpoint} ({exc}); "
            "check that it is a bleurt-pytorch checkpoint directory with its weights as model.safetensors "
            "(tellkit loads no pickled weights)"
        ) from exc
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = model.to(device).eval()

    values: list[float] = []
    with torch.inference_mode():
        for start in range(0, len(predictions), batch_size):
            refs = list(references[start : start + batch_size])
            hyps = list(predictions[start : start + batch_size])
            # BLEURT is asymmetric: the reference is the first segment, the candidate the second.
            inputs = tokenizer(refs, hyps, padding="longest", truncation=True, return_tensors="pt").to(device)
            values.extend(model(**inputs).logits.flatten().tolist())
    return {"n": len(values), "scores": {"bleurt": mean_score(values, seed)}, "items": {"bleurt": values},
            "checkpoint": str(checkpoint)}


METRIC = Metric(
    name="bleurt",
    fn=compute_bleurt,
    description="mean BLEURT score from a local bleurt-pytorch checkpoint (optional dependency)",
    options=frozenset({"bleurt_checkpoint", "bleurt_batch_size"}),
    bounds=(-math.inf, math.inf),  # a regression score: usually near [0, 1], not bounded by it
)
