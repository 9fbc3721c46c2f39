"""tellkit's model aliases: names that resolve to a folder built once in the tellkit cache.

Light to import (config validation uses `alias_key`): builders import torch and
transformers only when they run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tellkit.models.cache import cached_build
from tellkit.models.gemma3 import GEMMA3_ALIAS, build_gemma3, gemma3_folder
from tellkit.models.smollm2 import SMOLLM2_ALIAS, build_smollm2, smollm2_folder

TINY_ALIAS = "tiny-random"


def _build_tiny(out: Path) -> dict[str, Any]:
    from tellkit.models.tiny import build_tiny_model

    build_tiny_model(out)
    return {"source": "tellkit.models.tiny.build_tiny_model (defaults, seed 0)"}


# alias -> (builder, format version). Bump the version when a builder changes:
# older cached folders are then rebuilt.
_ALIASES: dict[str, tuple[Callable[[Path], dict[str, Any] | None], int]] = {
    SMOLLM2_ALIAS: (build_smollm2, 1),
    GEMMA3_ALIAS: (build_gemma3, 1),
    TINY_ALIAS: (_build_tiny, 1),
}
ALIASES: tuple[str, ...] = tuple(_ALIASES)

# alias -> a cheap check that its source package is installed (raises ModelError with the pip
# command), run before the cache is touched so a missing package is reported as such.
_PRECHECKS: dict[str, Callable[[], object]] = {
    SMOLLM2_ALIAS: smollm2_folder,
    GEMMA3_ALIAS: gemma3_folder,
}


def alias_key(name: str) -> str | None:
    """The canonical alias for ``name`` (case-insensitive), or None if it is not one."""
    key = name.strip().lower()
    return key if key in _ALIASES else None


def cached_alias(alias: str, cache_dir: Path | None) -> Path:
    """The cache folder of ``alias`` (canonical key), built on first use."""
    builder, version = _ALIASES[alias]
    precheck = _PRECHECKS.get(alias)
    if precheck is not None:
        precheck()  # a missing package is reported before touching the cache
    return cached_build(alias, version, builder, cache_dir)
