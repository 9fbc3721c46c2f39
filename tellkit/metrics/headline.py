"""Which task scores lead: the order reports show them in, and the default score a compare's winner
and a sweep's curves are judged by."""

from __future__ import annotations

HEADLINE_ORDER = ("label/accuracy", "label/f1", "json/strict", "json/field_exact", "json/schema",
                  "chrf/chrf", "chrf++/chrf++", "bleu/bleu", "bleurt/bleurt")


def headline_scores(summary: dict, k: int = 4) -> list[str]:
    """The task scores a report leads with; general ability (general/*, general_ood/*) is reported beside
    them, not among them."""
    available = {s for m in summary.values() for s in m["scores"] if not s.startswith(("general/", "general_ood/"))}
    first = [s for s in HEADLINE_ORDER if s in available]
    rest = sorted(available - set(first))
    return (first + rest)[:k]
