"""Model resolution and loading (aliases, local folders, hub ids) and the tiny test model.

Importing this package is cheap: torch/transformers are imported when used.
"""

from tellkit.models.resolve import (
    ALIASES,
    check_model_folder,
    default_cache_dir,
    load_model_and_tokenizer,
    resolve_dtype,
    resolve_model,
)
from tellkit.models.tiny import build_tiny_model

__all__ = [
    "ALIASES",
    "build_tiny_model",
    "check_model_folder",
    "default_cache_dir",
    "load_model_and_tokenizer",
    "resolve_dtype",
    "resolve_model",
]
