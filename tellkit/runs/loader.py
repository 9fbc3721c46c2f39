"""A config's model, with a run's LoRA adapter merged in: the one loader evaluation, probing, anchor
drafting and shipping share, so all of them see the same weights.

Merged, not wrapped: generation then runs at plain-model speed and needs no peft at use.
"""

from __future__ import annotations

from pathlib import Path

from ..config import Config
from ..errors import TellkitError
from ..models import load_model_and_tokenizer, resolve_model
from ..models import load_tokenizer as load_ref_tokenizer


def model_ref(cfg: Config, name: str | Path | None = None):
    """cfg.model (or another model `name`, e.g. a drafting model) resolved to a local folder or hub id."""
    return resolve_model(str(name) if name is not None else cfg.model.name,
                         trust_remote_code=cfg.model.trust_remote_code, allow_pickle=cfg.model.allow_pickle)


def load_tokenizer(cfg: Config):
    return load_ref_tokenizer(str(model_ref(cfg)), trust_remote_code=cfg.model.trust_remote_code)


def load_model(cfg: Config, adapter: Path | None = None, *, ref=None):
    """(model, tokenizer) of cfg.model (or the already resolved `ref`), with the adapter in `adapter` merged in."""
    ref = ref if ref is not None else model_ref(cfg)
    model, tok = load_model_and_tokenizer(ref, dtype=cfg.model.dtype, trust_remote_code=cfg.model.trust_remote_code,
                                          allow_pickle=cfg.model.allow_pickle)
    if adapter is not None:
        model = merge_adapter(model, adapter)
    return model, tok


def merge_adapter(model, adapter: Path):
    """`model` with the LoRA adapter saved in `adapter` merged into its weights, in eval mode."""
    from peft import PeftModel

    if not (Path(adapter) / "adapter_config.json").is_file():
        raise TellkitError(f"no adapter in {adapter}; train the run first")
    return PeftModel.from_pretrained(model, str(adapter)).merge_and_unload().eval()
