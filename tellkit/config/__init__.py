"""Typed configuration (schema.py) and YAML loading with overrides (load.py)."""

from .load import apply_override, config_from_dict, dump_config, load_config
from .schema import Config

__all__ = ["Config", "apply_override", "config_from_dict", "dump_config", "load_config"]
