"""The Python API: every CLI subcommand is one of these functions.

    cfg = tellkit.api.load("examples/quickstart.yaml", ["mix.ratio=30"])
    run_dir = tellkit.api.run(cfg)
"""

from __future__ import annotations

import os
from pathlib import Path

from .config import Config, load_config
from .models.modules import check_target_modules
from .prepare import ANCHORED, Prepared, mix, prepare  # noqa: F401  (part of the public API)
from .rundir import RunDir, training_hash
from .track import check_trackers
from .train.memory import preflight
from .validate import validate


def load(path: str | Path, overrides: list[str] | None = None) -> Config:
    return load_config(path, overrides)


def train(cfg: Config, *, overwrite: bool = False, prepared: Prepared | None = None,
          match_tokens: int | None = None, resume: bool = False) -> Path:
    """mix + LoRA training into cfg.output.dir; resumes an interrupted run in the same folder."""
    from .train.trainer import train_mixture  # torch-heavy import only when training

    out = Path(cfg.output.dir)
    run = RunDir(out)
    # Under torchrun / accelerate launch every rank runs this; only global rank 0 writes the run
    # folder (claiming it, the mixture files, run.json), so ranks never race on it.
    main = int(os.environ.get("RANK", "0")) == 0
    check_trackers(cfg)
    if main:
        run.check(cfg, overwrite=overwrite)  # the folder is usable (writes nothing)
    # model reference, anchor, every data line and the ratio are checked before the folder is claimed,
    # so a user error never leaves a failed run behind
    p = prepared or prepare(cfg)
    check_target_modules(cfg.lora.target_modules, p.model_ref, trust_remote_code=cfg.model.trust_remote_code)
    mixture = mix(cfg, None, prepared=p, match_tokens=match_tokens)
    pre = preflight(cfg, mixture, p.model_ref)  # the step plan; raises when it would not fit in memory
    if main:
        print("\n".join(pre.lines()), flush=True)
    resuming = run.begin(cfg, overwrite=overwrite, resume=resume) if main else False
    try:
        if main:
            mixture.write(out)
        heldout = p.heldout() if len(mixture.dev_rows) else None  # general dev loss next to the task's
        stats = train_mixture(pre.cfg, p.model_ref, mixture, out, plan=pre.plan, heldout=heldout)
    except BaseException as e:
        if main:
            run.fail(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
        raise
    if not main:
        return out
    run.complete(mixture=mixture.report, train=stats, preflight=pre.summary(), anchor=mixture.report["anchor"],
                 anchor_position=cfg.anchor.position, model_ref=p.model_ref, resumed=resuming)
    return out


def run(cfg: Config, *, overwrite: bool = False, resume: bool = False) -> Path:
    """The whole pipeline for one config: mix, train, evaluate (when a test set is given), report."""
    from .evaluate.runner import evaluate_run
    from .report.run_report import write_run_report

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


# --- using a finished run (a run folder, or a compare folder / its best/) ---------------------------

def export(run_dir: str | Path, out: str | Path, *, gguf: bool = False, outtype: str = "f16") -> Path:
    """Merge the run's adapter into its base model and write it (+ a GGUF file) to the new folder ``out``."""
    from .ship.export import export_run

    return export_run(run_dir, out, gguf=gguf, outtype=outtype)


def predict(run_dir: str | Path, source: str, output: str | Path | None = None, *,
            max_new_tokens: int | None = None, batch_size: int | None = None) -> int:
    """Generate for every input of ``source`` (a data file, or "-" for stdin), anchor applied; JSONL to
    ``output`` (default stdout). Returns the number of inputs."""
    from .ship.predict import predict as run_predict

    return run_predict(run_dir, source, output, max_new_tokens=max_new_tokens, batch_size=batch_size)


def chat(run_dir: str | Path, *, max_new_tokens: int | None = None) -> int:
    """Interactive chat on stdin/stdout with the anchor applied; returns the number of answered turns."""
    from .ship.chat import chat as run_chat

    return run_chat(run_dir, max_new_tokens=max_new_tokens)
