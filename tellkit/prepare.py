"""Per-config preparation shared by the API, validation and the analyses: resolve the model, load
its tokenizer, tokenize each data source once (`Prepared`), and build a method's mixture (`mix`).

It sits below both `tellkit.api` and `tellkit.validate`, so neither has to import the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset

from .anchor import anchor_text
from .config import Config
from .data.cache import tokenized_dataset
from .errors import ConfigError
from .mix import Mixture, build_mixture
from .models import load_tokenizer, resolve_model
from .rundir import RunDir

ANCHORED = ("tell", "sft+anchor")  # methods whose task examples carry the anchor
HELDOUT_DEV_EXAMPLES = 64  # held-out general examples scored at each save: enough for a trend, cheap


@dataclass
class Prepared:
    """Tokenized data sources for one config, shared by every method of a comparison."""

    cfg: Config
    model_ref: str
    tokenizer: object
    anchor: str | None
    infos: dict
    tokenized: dict = field(default_factory=dict)  # (source, anchor) -> Dataset: hash and map each once

    def task(self, anchored: bool) -> Dataset:
        return self._tokenize("task", self.cfg.task, self.anchor if anchored else None)

    def general(self) -> Dataset | None:
        return self._tokenize("general", self.cfg.general, None) if self.cfg.general else None

    def heldout(self, limit: int = HELDOUT_DEV_EXAMPLES) -> Dataset | None:
        """The first `limit` examples of general.heldout_path (general dev loss during training)."""
        g = self.cfg.general
        if not (g and g.heldout_path):
            return None
        ds = self._tokenize("heldout", g, None, path=g.heldout_path)
        return ds.select(range(min(limit, len(ds))))

    def _tokenize(self, name: str, src, anchor: str | None, path: str | None = None) -> Dataset:
        # Every method and sweep cell asks for the same sources; the on-disk cache would serve them,
        # but only after re-hashing the whole source file each time.
        if (name, anchor) in self.tokenized:
            return self.tokenized[(name, anchor)]
        ds, info = tokenized_dataset(path or src.path, src.format, src.columns, self.tokenizer,
                                     max_length=self.cfg.train.max_length, anchor=anchor,
                                     position=self.cfg.anchor.position, separator=self.cfg.anchor.separator,
                                     name=name)
        self.infos[f"{name}{'+anchor' if anchor else ''}"] = info
        self.tokenized[(name, anchor)] = ds
        return ds


def prepare(cfg: Config) -> Prepared:
    """Resolve the model and load its tokenizer (no weights): data errors surface before any heavy work."""
    text = anchor_text(cfg.anchor)
    ref = resolve_model(cfg.model.name, trust_remote_code=cfg.model.trust_remote_code,
                        allow_pickle=cfg.model.allow_pickle)
    tok = load_tokenizer(ref, trust_remote_code=cfg.model.trust_remote_code)
    return Prepared(cfg=cfg, model_ref=str(ref), tokenizer=tok, anchor=text, infos={})


def mix(cfg: Config, out_dir: Path | None = None, *, prepared: Prepared | None = None,
        match_tokens: int | None = None) -> Mixture:
    """Build the mixture for cfg.mix.method and write mixture.jsonl + mixture.json to out_dir (a new or
    empty folder, or a tellkit run folder of this config: see RunDir.mixing)."""
    if out_dir is not None:
        with RunDir(out_dir).mixing(cfg):
            mixture = mix(cfg, prepared=prepared, match_tokens=match_tokens)
            mixture.write(Path(out_dir))
        return mixture
    p = prepared or prepare(cfg)
    method = cfg.mix.method
    if method == "tell" and p.anchor is None:
        raise ConfigError("mix.method=tell needs an anchor: set anchor.text or anchor.file")
    budget_lengths = None
    if cfg.task.token_budget and p.anchor is not None:  # every method picks the same examples
        budget_lengths = p.task(anchored=True).data.column("n_tokens").to_numpy()
    mixture = build_mixture(p.task(anchored=method in ANCHORED),
                            p.general() if method in ("tell", "general-only") else None,
                            cfg.mix, token_budget=cfg.task.token_budget, match_tokens=match_tokens,
                            budget_lengths=budget_lengths, dev_fraction=cfg.eval.dev_fraction)
    mixture.report["anchor"] = p.anchor if method in ANCHORED else None
    mixture.report["anchor_position"] = cfg.anchor.position
    mixture.report["data"] = p.infos
    return mixture
