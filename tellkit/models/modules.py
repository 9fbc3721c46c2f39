"""`lora.target_modules` checked against the model before any weights load.

peft finds out only when it wraps the loaded model ("Target modules ... not found", a traceback
after the data is tokenized and the weights are read), and says nothing when just one name of
several is wrong. The module names come from the model's config alone: the architecture is built
on the meta device, which allocates no memory.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import ConfigError


def module_names(model_ref: str | Path, *, trust_remote_code: bool = False) -> dict[str, str]:
    """{qualified module name: class name} of the model at `model_ref`, built without weights."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(model_ref), trust_remote_code=trust_remote_code)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    return {name: type(module).__name__ for name, module in model.named_modules() if name}


def check_target_modules(targets: str | list[str], model_ref: str | Path, *, trust_remote_code: bool = False) -> None:
    """Raise a ConfigError unless every name in `targets` selects a module, by peft's own rule: a string
    is a regular expression matched against whole qualified names, each name of a list matches a module
    named exactly so or ending in "." + name. "all-linear" is peft's keyword for every linear layer."""
    if targets == "all-linear":
        return
    modules = module_names(model_ref, trust_remote_code=trust_remote_code)
    if isinstance(targets, str):
        try:
            found = any(re.fullmatch(targets, name) for name in modules)
        except re.error as e:
            raise ConfigError(f"lora.target_modules={targets!r} is not a valid regular expression ({e}); "
                              "give a list of module names, e.g. [q_proj, v_proj], or all-linear") from None
        missing = [] if found else [targets]
    else:
        missing = [t for t in targets if not any(name == t or name.endswith("." + t) for name in modules)]
    if missing:
        linear = sorted({name.rsplit(".", 1)[-1] for name, kind in modules.items() if "Linear" in kind})
        raise ConfigError(f"lora.target_modules: {', '.join(map(repr, missing))} matches no layer of the model "
                          f"{model_ref}; its linear layers are named {', '.join(linear) or '(none found)'}; "
                          "use some of those, or all-linear")
