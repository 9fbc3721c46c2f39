"""Checks that a local folder is a complete, safe-to-load Hugging Face model.

Safetensors only unless the user opts into pickles (pickle files can run code);
remote code only when trusted; every shard of an index present; a tokenizer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tellkit.errors import ModelError

SAFETENSORS_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def _weight_files(folder: Path) -> tuple[list[Path], list[Path]]:
    safe, pickled = [], []
    for p in folder.iterdir():
        if not p.is_file():
            continue
        if p.name.startswith("adapter_model"):  # a LoRA adapter's weights, not the model's
            continue
        if p.suffix in SAFETENSORS_SUFFIXES:
            safe.append(p)
        elif p.suffix in PICKLE_SUFFIXES and p.name not in ("training_args.bin", "optimizer.pt", "scheduler.pt"):
            pickled.append(p)
    return sorted(safe), sorted(pickled)


def _missing_shards(folder: Path, index_name: str) -> list[str]:
    index = folder / index_name
    if not index.is_file():
        return []
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
    except (OSError, ValueError) as e:
        raise ModelError(f"model folder {folder}: cannot read {index_name} ({e}); re-save the model") from e
    return sorted({f for f in weight_map.values() if not (folder / f).is_file()})


def check_model_folder(folder: Path, *, allow_pickle: bool = False, trust_remote_code: bool = False) -> Path:
    """Validate a local Hugging Face model folder; return it, or raise ModelError."""
    folder = Path(folder).expanduser()
    if not folder.exists():
        raise ModelError(f"model folder {folder} does not exist; check model.name")
    if not folder.is_dir():
        hint = " (GGUF files are not supported directly; use a safetensors folder)" if folder.suffix == ".gguf" else ""
        raise ModelError(f"model path {folder} is a file; set model.name to the folder holding config.json{hint}")
    config_path = folder / "config.json"
    if not config_path.is_file():
        adapter = folder / "adapter_config.json"
        if adapter.is_file():
            base = ""
            try:
                base = json.loads(adapter.read_text(encoding="utf-8")).get("base_model_name_or_path") or ""
            except (OSError, ValueError):
                pass
            raise ModelError(
                f"{folder} is a LoRA adapter, not a full model; set model.name to its base model"
                + (f" ({base})" if base else "")
            )
        raise ModelError(
            f"model folder {folder} has no config.json; point model.name at a Hugging Face model folder "
            "(what save_pretrained writes)"
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelError(f"{config_path} is not valid JSON ({e}); re-save the model") from e
    if not isinstance(config, dict):
        raise ModelError(f"{config_path} is not a JSON object; re-save the model")

    safe, pickled = _weight_files(folder)
    if safe:
        missing = _missing_shards(folder, "model.safetensors.index.json")
        if missing:
            raise ModelError(
                f"model folder {folder} is missing weight shards {', '.join(missing[:3])}"
                + (" ..." if len(missing) > 3 else "")
                + "; copy or download the complete model"
            )
    elif pickled:
        if not allow_pickle:
            raise ModelError(
                f"model folder {folder} has only pickled weights ({pickled[0].name}); tellkit loads safetensors "
                "only because pickle files can run code: convert it to safetensors, or set "
                "`model.allow_pickle: true` if you trust the source"
            )
        missing = _missing_shards(folder, "pytorch_model.bin.index.json")
        if missing:
            raise ModelError(
                f"model folder {folder} is missing weight shards {', '.join(missing[:3])}; "
                "copy or download the complete model"
            )
    else:
        raise ModelError(
            f"model folder {folder} has no weights (*.safetensors); copy the model's weight files there "
            "or point model.name at the complete model"
        )

    if not any((folder / f).is_file() for f in TOKENIZER_FILES):
        raise ModelError(
            f"model folder {folder} has no tokenizer files (tokenizer.json / tokenizer_config.json); "
            "save the tokenizer next to the model (tokenizer.save_pretrained)"
        )
    check_remote_code(config, str(folder), trust_remote_code)
    return folder


def check_remote_code(config: dict[str, Any], where: str, trust_remote_code: bool) -> None:
    if trust_remote_code or not config.get("auto_map"):
        return
    from transformers import CONFIG_MAPPING

    model_type = config.get("model_type")
    if model_type not in CONFIG_MAPPING:
        raise ModelError(
            f"model {where} needs its own Python code (model_type={model_type!r}, auto_map in config.json); "
            "set `model.trust_remote_code: true` only if you trust its source"
        )
