"""The Python API: every CLI subcommand is one of these functions.

    cfg = tellkit.api.load("examples/quickstart.yaml", ["mix.ratio=30"])
    run_dir = tellkit.api.run(cfg)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset

from .anchor import anchor_text
from .config import Config, load_config
from .data.cache import tokenized_dataset
from .mix import Mixture, build_mixture
from .models.resolve import load_tokenizer, resolve_model
from .rundir import RunDir, training_hash

ANCHORED = ("tell", "sft+anchor")  # methods whose task examples carry the anchor


def load(path: str | Path, overrides: list[str] | None = None) -> Config:
    return load_config(path, overrides)


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

    def _tokenize(self, name: str, src, anchor: str | None) -> Dataset:
        # Every method and sweep cell asks for the same sources; the on-disk cache would serve them,
        # but only after re-hashing the whole source file each time.
        if (name, anchor) in self.tokenized:
            return self.tokenized[(name, anchor)]
        ds, info = tokenized_dataset(src.path, src.format, src.columns, self.tokenizer,
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
    """Build the mixture for cfg.mix.method and write mixture.jsonl + mixture.json to out_dir."""
    p = prepared or prepare(cfg)
    method = cfg.mix.method
    if method == "tell" and p.anchor is None:
        from .errors import ConfigError

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
    if out_dir is not None:
        mixture.write(Path(out_dir))
    return mixture


def train(cfg: Config, *, overwrite: bool = False, prepared: Prepared | None = None,
          match_tokens: int | None = None, resume: bool = False) -> Path:
    """mix + LoRA training into cfg.output.dir; resumes an interrupted run in the same folder."""
    from .train.trainer import train_mixture  # torch-heavy import only when training

    out = Path(cfg.output.dir)
    run = RunDir(out)
    # Under torchrun / accelerate launch every rank runs this; only global rank 0 writes the run
    # folder (claiming it, the mixture files, run.json), so ranks never race on it.
    main = int(os.environ.get("RANK", "0")) == 0
    if main:
        run.check(cfg, overwrite=overwrite)  # the folder is usable (writes nothing)
    # model reference, anchor, every data line and the ratio are checked before the folder is claimed,
    # so a user error never leaves a failed run behind
    p = prepared or prepare(cfg)
    mixture = mix(cfg, None, prepared=p, match_tokens=match_tokens)
    resuming = run.begin(cfg, overwrite=overwrite, resume=resume) if main else False
    try:
        if main:
            mixture.write(out)
        stats = train_mixture(cfg, p.model_ref, mixture, out)
    except BaseException as e:
        if main:
            run.fail(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
        raise
    if not main:
        return out
    run.complete(mixture=mixture.report, train=stats, anchor=mixture.report["anchor"],
                 anchor_position=cfg.anchor.position, model_ref=p.model_ref, resumed=resuming)
    return out


def run(cfg: Config, *, overwrite: bool = False, resume: bool = False) -> Path:
    """The whole pipeline for one config: mix, train, evaluate (when a test set is given), report."""
    from .evaluate.runner import evaluate_run
    from .report.run_report import write_run_report
    from .validate import validate

    state = RunDir(cfg.output.dir).state()
    done = (not overwrite and state is not None and state.get("status") == "complete"
            and state.get("training_hash") == training_hash(cfg))  # finished: just (re)evaluate and report
    if done:
        out = Path(cfg.output.dir)
    else:  # test split, metric names, data, model, ratio: all checked before any training
        p = prepare(cfg)
        validate(cfg, overwrite=overwrite, prepared=p)
        out = train(cfg, overwrite=overwrite, resume=resume, prepared=p)
    if int(os.environ.get("RANK", "0")) != 0:  # under a launcher, rank 0 alone evaluates and reports
        return out
    if cfg.task.test_path:
        evaluate_run(out, cfg=cfg)
    write_run_report(out)
    return out
