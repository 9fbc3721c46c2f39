"""sacrebleu metrics: ``chrf``, ``chrf++``, ``bleu`` and ``ter``.

Default (corpus level): one score for the whole corpus, as sacrebleu defines
it (n-gram statistics are summed over items, then turned into a score). This
is not the mean of per-item scores.

``options["doc_level"] = True``: each item is a whole (possibly multi-line)
document, scored on its own; the reported score is the mean over documents.
That is the paper's document-level translation protocol. BLEU uses
sacrebleu's effective order here, as recommended for scoring short units
one at a time; the signature records it.

``options["max_doc_tokens"] = N``: items whose *reference* has more than N
whitespace tokens are left out (counted in ``skipped``), e.g. to match a
model's context window. Applies in both modes.

CIs bootstrap over the kept items (documents in doc-level mode). Per-item
sufficient statistics are extracted once and summed per resample, the same
way ``sacrebleu.significance`` does it, instead of re-tokenising the corpus
for every resample. ``items`` keeps those per-item statistics (corpus level)
or the per-document scores (doc level), so a comparison can resample items
across seeds too. Scores lie in [0, 100], except TER, which can pass 100.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from sacrebleu.metrics import BLEU, CHRF, TER
from sacrebleu.metrics.base import Metric as SacreMetric

from tellkit.metrics.base import (
    Metric,
    Statistic,
    is_positive_int,
    item_mean,
    item_rows,
    mean_score,
    option,
    score,
)
from tellkit.metrics.bootstrap import bootstrap_corpus_ci

# Each corpus resample recomputes the score from summed statistics: cheap, but not free.
CORPUS_RESAMPLES = 200

_FACTORIES: dict[str, Callable[[bool], SacreMetric]] = {
    "chrf": lambda doc_level: CHRF(),
    "chrf++": lambda doc_level: CHRF(word_order=2),
    "bleu": lambda doc_level: BLEU(effective_order=doc_level),
    "ter": lambda doc_level: TER(),
}


def _is_token_limit(value: Any) -> bool:
    return value is None or is_positive_int(value)


def _make_compute(name: str) -> Callable[[Sequence[str], Sequence[str], Mapping[str, Any], int], dict[str, Any]]:
    def compute(
        predictions: Sequence[str], references: Sequence[str], options: Mapping[str, Any], seed: int
    ) -> dict[str, Any]:
        doc_level = option(options, "doc_level", False, lambda v: isinstance(v, bool), "true or false")
        max_tokens = option(options, "max_doc_tokens", None, _is_token_limit, "a positive integer or null")
        keep = [i for i, ref in enumerate(references) if max_tokens is None or len(ref.split()) <= max_tokens]
        hyps = [predictions[i] for i in keep]
        refs = [references[i] for i in keep]
        metric = _FACTORIES[name](doc_level)
        extra = {"skipped": len(references) - len(keep), "doc_level": doc_level}
        if not keep:
            nan = float("nan")
            return {"n": 0, "scores": {name: score(nan, nan, nan)}, "items": {name: []}, "signature": None, **extra}

        stats = np.array(metric._extract_corpus_statistics(hyps, [refs]))

        def score_of(item_stats: np.ndarray) -> float:
            return float(metric._compute_score_from_stats(item_stats).score)

        def corpus_score(idx: np.ndarray) -> float:
            return score_of(stats[idx].sum(axis=0))

        if doc_level:
            doc_scores = [score_of(row) for row in stats]
            result, items = mean_score(doc_scores, seed), item_rows(doc_scores)
        else:
            result = score(*bootstrap_corpus_ci(len(keep), corpus_score, n_resamples=CORPUS_RESAMPLES, seed=seed))
            items = item_rows(stats)
        return {"n": len(keep), "scores": {name: result}, "items": {name: items},
                "signature": str(metric.get_signature()), **extra}

    return compute


def _make_statistic(name: str) -> Callable[[str, Mapping[str, Any]], Statistic]:
    def statistic(score_name: str, result: Mapping[str, Any]) -> Statistic:
        if result.get("doc_level"):
            return item_mean  # items are per-document scores
        metric = _FACTORIES[name](False)
        return lambda rows: float(metric._compute_score_from_stats(rows.sum(axis=0)).score)

    return statistic


METRICS = {
    name: Metric(
        name=name,
        fn=_make_compute(name),
        description=f"sacrebleu {name} (corpus level, or mean over documents with doc_level)",
        options=frozenset({"doc_level", "max_doc_tokens"}),
        higher_is_better=name != "ter",
        bounds=(0.0, 100.0) if name != "ter" else (0.0, math.inf),
        statistic=_make_statistic(name),
    )
    for name in _FACTORIES
}
