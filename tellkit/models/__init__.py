"""Model resolution and loading (aliases, local folders, hub ids) and the tiny test model.

One concern per module: aliases (alias table), cache (atomic builds in the
tellkit cache), gguf_convert (GGUF -> safetensors, checked), smollm2 (the
default model) and gemma3 (Gemma-3-270M, a base model), checks (is a
folder a safe, complete model), hub (hub ids), resolve (name -> folder or id),
load (model + tokenizer). Importing this package is cheap: torch/transformers
are imported when used.
"""

from tellkit.models.aliases import ALIASES, alias_key
from tellkit.models.cache import default_cache_dir
from tellkit.models.checks import check_model_folder
from tellkit.models.load import load_model_and_tokenizer, load_tokenizer, resolve_dtype
from tellkit.models.resolve import resolve_model
from tellkit.models.tiny import build_tiny_model

__all__ = [
    "ALIASES",
    "alias_key",
    "build_tiny_model",
    "check_model_folder",
    "default_cache_dir",
    "load_model_and_tokenizer",
    "load_tokenizer",
    "resolve_dtype",
    "resolve_model",
]
