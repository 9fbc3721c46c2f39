"""Anchor prompts: apply (apply.py), draft with a model (draft.py), rank by separation (rank.py)."""

from .apply import anchor_text, apply_anchor

__all__ = ["anchor_text", "apply_anchor"]
