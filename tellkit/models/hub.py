"""Resolve a Hugging Face Hub id without downloading: the local HF cache first, then the hub's file list."""

from __future__ import annotations

import os
from pathlib import Path

from tellkit.errors import ModelError
from tellkit.models.aliases import ALIASES
from tellkit.models.checks import (
    PICKLE_SUFFIXES,
    SAFETENSORS_SUFFIXES,
    check_model_folder,
    check_remote_code,
)


def _truthy_env(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def hub_offline() -> bool:
    """True if HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE is set (read now, not at import)."""
    if _truthy_env("HF_HUB_OFFLINE") or _truthy_env("TRANSFORMERS_OFFLINE"):
        return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except Exception:  # pragma: no cover - very old huggingface_hub
        return False


def unknown_model(name: str, why: str) -> ModelError:
    return ModelError(
        f"unknown model '{name}': not a tellkit alias ({', '.join(ALIASES)}), not a local folder, "
        f"and {why}"
    )


def looks_like_path(name: str) -> bool:
    return (
        name.startswith(("/", "./", "../", "~", ".\\", "..\\"))
        or "\\" in name
        or name.count("/") >= 2
        or name.endswith("/")
        or (len(name) > 1 and name[1] == ":")  # C:\...
    )


def _cached_snapshot(repo_id: str) -> Path | None:
    """The local HF-cache snapshot folder holding ``repo_id``'s config.json, if any."""
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(repo_id, "config.json")
    except Exception:
        return None
    return Path(hit).parent if isinstance(hit, str) else None


def resolve_hub(name: str, *, allow_pickle: bool, trust_remote_code: bool) -> Path | str:
    from huggingface_hub.errors import (
        GatedRepoError,
        HFValidationError,
        RepositoryNotFoundError,
    )
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        raise unknown_model(name, "not a valid hub id (expected org/name)") from None

    snapshot = _cached_snapshot(name)
    cache_problem: ModelError | None = None
    if snapshot is not None:
        try:
            return check_model_folder(snapshot, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
        except ModelError as e:  # e.g. only config.json cached; ask the hub below
            cache_problem = e

    if hub_offline():
        if cache_problem is not None:
            raise ModelError(
                f"hub model '{name}' is only partly in the local Hugging Face cache and the hub is offline "
                f"(HF_HUB_OFFLINE); go online once to download it, or use a local folder"
            ) from cache_problem
        raise unknown_model(name, "not reachable on the hub (offline? HF_HUB_OFFLINE is set)")

    from huggingface_hub import HfApi

    try:
        info = HfApi().model_info(name, timeout=15)
    except GatedRepoError:
        raise ModelError(
            f"hub model '{name}' is gated; accept its license on huggingface.co and log in (`hf auth login`)"
        ) from None
    except RepositoryNotFoundError:
        raise unknown_model(
            name, "not found on the hub (check the spelling; private models need `hf auth login`)"
        ) from None
    except Exception as e:  # network errors of all kinds
        raise unknown_model(name, f"not reachable on the hub (offline? {type(e).__name__})") from None

    files = [s.rfilename for s in (info.siblings or [])]
    top = [f for f in files if "/" not in f]
    has_safe = any(f.endswith(SAFETENSORS_SUFFIXES) and not f.startswith("adapter_model") for f in top)
    has_pickle = any(f.endswith(PICKLE_SUFFIXES) and f != "training_args.bin" for f in top)
    if files and "config.json" not in top:
        if "adapter_config.json" in top:
            raise ModelError(f"hub repo '{name}' is a LoRA adapter, not a full model; set model.name to its base model")
        raise ModelError(f"hub repo '{name}' has no config.json; it is not a transformers model")
    if files and not has_safe:
        if has_pickle and not allow_pickle:
            raise ModelError(
                f"hub model '{name}' has only pickled weights (.bin/.pt); tellkit loads safetensors only "
                "because pickle files can run code: pick a safetensors model, or set "
                "`model.allow_pickle: true` if you trust the source"
            )
        if not has_pickle:
            raise ModelError(f"hub repo '{name}' has no weight files (*.safetensors); pick another model")
    config = getattr(info, "config", None)
    if isinstance(config, dict):
        check_remote_code(config, f"'{name}'", trust_remote_code)
    return name
