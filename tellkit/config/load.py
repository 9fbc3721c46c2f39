"""YAML -> typed `Config`, with dotted overrides and one-line errors.

`load_config("cfg.yaml", ["mix.ratio=100"])` reads the file with
`yaml.safe_load`, applies overrides, resolves relative paths against the
config's folder (so a config works from any working directory) and validates.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import ConfigError
from .schema import Config

# Config fields that hold file paths, resolved against the config's folder.
PATH_KEYS = (
    ("task", "path"), ("task", "test_path"), ("general", "path"), ("general", "heldout_path"),
    ("anchor", "file"), ("eval", "json_schema"), ("eval", "bleurt_checkpoint"), ("output", "dir"),
)


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        if isinstance(e, yaml.constructor.ConstructorError):  # e.g. !!python/object: safe_load refuses it
            raise ConfigError(f"{where}: YAML tag not allowed ({e.problem}); configs hold plain values only, "
                              "remove the tag") from None
        raise ConfigError(f"{where}: invalid YAML ({getattr(e, 'problem', e)})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; save the config as UTF-8") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the config must be a mapping of sections (model:, task:, ...)")
    for item in overrides or []:
        apply_override(raw, item)
    _resolve_paths(raw, path.parent)
    return validate(raw, source=str(path))


def config_from_dict(raw: dict[str, Any], base_dir: str | Path = ".") -> Config:
    """Python-API twin of `load_config` for configs built in code."""
    raw = yaml.safe_load(yaml.safe_dump(raw))  # deep copy, plain types only
    _resolve_paths(raw, Path(base_dir))
    return validate(raw, source="config")


def apply_override(raw: dict, item: str) -> None:
    """Apply `a.b.c=value`; the value is parsed as YAML (`1e-4`, `[0, 1]`, `true`)."""
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"override '{item}' must look like section.key=value (e.g. mix.ratio=100)")
    node = raw
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override '{item}': '{part}' is not a section")
    node[parts[-1]] = yaml.safe_load(value) if value.strip() else None


def _resolve_paths(raw: dict, base: Path) -> None:
    model = raw.get("model")
    if isinstance(model, dict) and isinstance(model.get("name"), str) and model["name"].strip():
        # model.name is an alias, a hub id or a folder: only a folder (explicitly relative, or one that
        # exists next to the config) is resolved, so the config works from any working directory.
        from ..models.aliases import (
            alias_key,  # light module: no torch/transformers import
        )

        name = model["name"].strip()
        value = Path(name).expanduser()
        if alias_key(name) is not None:  # aliases win over folders, as in resolve_model
            pass
        elif not value.is_absolute() and (name.startswith(".") or (base / value).exists()):
            model["name"] = str((base / value).resolve())
        elif name.startswith("~"):
            model["name"] = str(value)
    for section, key in PATH_KEYS:
        node = raw.get(section)
        if isinstance(node, dict) and isinstance(node.get(key), str):
            value = Path(node[key]).expanduser()
            # Hub dataset ids ("org/name") are not paths: keep them unless a local file exists.
            candidate = value if value.is_absolute() else base / value
            if value.is_absolute() or candidate.exists() or _looks_local(node[key], base) or key == "dir":
                node[key] = str(candidate.resolve())
    tasks = (raw.get("eval") or {}).get("general_tasks") if isinstance(raw.get("eval"), dict) else None
    if isinstance(tasks, list):  # lm-eval task names stay names; task YAML files resolve like the paths above
        raw["eval"]["general_tasks"] = [str((base / Path(t).expanduser()).resolve())
                                        if isinstance(t, str) and t.endswith((".yaml", ".yml")) else t for t in tasks]


def _looks_local(value: str, base: Path) -> bool:
    """Not a hub dataset id ("org/name"): a path-like string, one with a suffix, or one whose first part
    is a local folder ("data/task2" next to a data/ folder is a missing file, not a dataset on the hub)."""
    return (value.startswith((".", "/", "~")) or Path(value).suffix != "" or value.count("/") != 1
            or (base / value.split("/")[0]).exists())


def validate(raw: dict, source: str = "config") -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(f"{source}: {_describe(e.errors()[0], raw)}") from None


def _describe(err: dict, raw: dict) -> str:
    loc = [str(p) for p in err["loc"] if not str(p).startswith(("function-", "literal["))]
    key = re.sub(r"\.(\d+)(?=\.|$)", r"[\1]", ".".join(loc))  # sweep.ratios[0], not sweep.ratios.0
    kind = err["type"]
    if kind == "extra_forbidden":
        parent = _model_at(loc[:-1])
        allowed = sorted(parent.model_fields) if parent else []
        hint = difflib.get_close_matches(loc[-1], allowed, n=1)
        did = f"; did you mean '{'.'.join(loc[:-1] + hint)}'?" if hint else ""
        return f"unknown key '{key}'{did} (allowed: {', '.join(allowed)})"
    value = err.get("input")
    msg = err["msg"].removeprefix("Value error, ")
    if kind == "literal_error":
        return f"{key}={value!r} is not allowed; {msg.lower()}"
    if not key:  # a model-level rule such as "tell needs a task section"
        return msg
    return f"{key}={value!r}: {msg}"


def _model_at(loc: list[str]) -> type[BaseModel] | None:
    model: type[BaseModel] = Config
    for part in loc:
        field = model.model_fields.get(part)
        if field is None:
            return None
        ann = field.annotation
        sub = next((a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if sub is None:
            return None
        model = sub
    return model


def dump_config(cfg: Config) -> str:
    """The resolved config as YAML, written next to every run's outputs."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
