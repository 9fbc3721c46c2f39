"""Per-config preparation shared by the pipeline, the studies and `tellkit mix`: resolve the model,
load its tokenizer, tokenize each data source once (`Prepared`), and build a method's mixture (`mix`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from datasets import Dataset

from ..config import Config
from ..data.anchor import anchor_text
from ..data.cache import tokenized_dataset
from ..methods import METHODS, require_anchor
from ..models import load_tokenizer, resolve_model
from .mixture import Mixture, build_mixture

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


def mix(cfg: Config, *, prepared: Prepared | None = None, match_tokens: int | None = None) -> Mixture:
    """Build the mixture for cfg.mix.method (in memory; pipeline.write_mixture writes it to a folder)."""
    p = prepared or prepare(cfg)
    method = METHODS[cfg.mix.method]
    require_anchor(method.name, p.anchor)
    budget_lengths = None
    if cfg.task.token_budget and p.anchor is not None:  # every method picks the same examples
        budget_lengths = p.task(anchored=True).data.column("n_tokens").to_numpy()
    mixture = build_mixture(p.task(anchored=method.anchored),
                            p.general() if method.general else None,
                            cfg.mix, token_budget=cfg.task.token_budget, match_tokens=match_tokens,
                            budget_lengths=budget_lengths, dev_fraction=cfg.eval.dev_fraction)
    mixture.report["anchor"] = p.anchor if method.anchored else None
    mixture.report["anchor_position"] = cfg.anchor.position
    mixture.report["data"] = p.infos
    return mixture
