"""One config through the pipeline: validate, mix, preflight, train, evaluate, report, each step once.

`validate` (`tellkit validate`) runs every check that can fail, before any model weights load or
training starts. Cheapest first: the config itself was checked by `load_config`; then the anchor, the
output folder, the evaluation files and metric names, the model reference and its tokenizer (no
weights), every line of the task and general data (tokenized, as training will see it) with the
ratio's feasibility, and last the step plan and whether training fits in memory. Every failure is a
`TellkitError` naming the file:line or key.

`check` is that validation keeping what it built (`Checked`: the tokenized data, the mixture, the
preflight), so `train` starts from it instead of building the mixture and the plan again; `run` is
check, train, evaluate and report. A compare or sweep plan checks each cell the same way and hands
the cell's mixture on to its training (tellkit/study/execute).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .config import Config, load_config
from .data.anchor import anchor_text
from .data.formats import to_examples
from .data.readers import read_records
from .errors import ConfigError
from .methods import METHODS, alone, require_anchor
from .mix import Mixture
from .mix.prepare import Prepared, mix, prepare
from .models.modules import check_target_modules
from .runs.rundir import RunDir
from .track import check_trackers
from .train.memory import Preflight, preflight


@dataclass
class Checked:
    """What checking one config built, for its training: nothing is built twice."""

    prepared: Prepared
    mixture: Mixture
    preflight: Preflight  # the step plan and memory check (its cfg: the auto-fitted one, if any)
    summary: dict = field(default_factory=dict)  # what `tellkit validate` prints (empty when only built)


def validate(cfg: Config, *, overwrite: bool = False, check_output: bool = True,
             prepared: Prepared | None = None) -> dict:
    """Config, anchor, output folder, eval files, model reference, every data line, ratio. Returns a summary.

    compare/sweep pass check_output=False: their output.dir holds many cells, not one run."""
    return check(cfg, overwrite=overwrite, check_output=check_output, prepared=prepared).summary


def check(cfg: Config, *, overwrite: bool = False, check_output: bool = True,
          prepared: Prepared | None = None) -> Checked:
    """`validate`'s checks, keeping the tokenizer, tokenized data, mixture and preflight they built.

    Callers that hold a `prepared` (a compare's methods share one) pass it: each source is tokenized once."""
    summary: dict = {}
    method = cfg.mix.method
    anchor = anchor_text(cfg.anchor)  # empty anchor, missing or non-UTF-8 anchor.file
    require_anchor(method, anchor)
    if METHODS[method].matched:
        raise ConfigError(f"mix.method={method} copies a tell run's token count, so it only runs inside "
                          f"`tellkit compare` (compare.methods); use {alone()} here")
    check_trackers(cfg)  # train.report_to names an installed tracker

    if check_output:
        state = RunDir(cfg.output.dir).check(cfg, overwrite=overwrite)  # another run / not a run / a file
        summary["output"] = (f"{cfg.output.dir}: new run" if state is None else
                             f"{cfg.output.dir} holds this run ({state.get('status')}): "
                             + ("it will be re-evaluated, not retrained" if state.get("status") == "complete"
                                else "its mixture is written; training starts there" if state.get("status") == "mixed"
                                else "training resumes from its last checkpoint"))
        if state is not None and state.get("status") == "interrupted":
            summary["output_reason"] = state["reason"]

    if cfg.task.test_path:
        _check_metrics(cfg)
        summary["test_records"] = _count(cfg.task.test_path, cfg.task.format, cfg.task.columns, "test")
    if cfg.general and cfg.general.heldout_path:
        summary["heldout_records"] = _count(cfg.general.heldout_path, "auto", {}, "heldout")

    prepared = prepared or prepare(cfg)  # model reference (alias / folder with safetensors / hub id) and tokenizer only
    summary["model"] = prepared.model_ref
    summary["anchor"] = anchor
    # tokenizes every task/general line; ratio feasibility; writes nothing. Then the step plan and the memory
    # estimate, which raises when training would not fit (unless train.auto_fit)
    checked = build(cfg, prepared)
    mixture = checked.mixture
    summary["task_records"] = len(mixture.task)
    if mixture.general is not None:
        summary["general_records"] = len(mixture.general)
    report = mixture.report
    summary["mixture"] = {k: report[k] for k in ("requested_ratio", "achieved_ratio", "task", "general", "total")}
    summary["training"] = checked.preflight.summary()
    checked.summary = summary
    return checked


def write_mixture(cfg: Config, out_dir: str | Path) -> Mixture:
    """`tellkit mix`: build the mixture and write mixture.jsonl + mixture.json to `out_dir` (a new or empty
    folder, or a tellkit run folder of this config), holding the run folder's lock (RunDir.mixing)."""
    with RunDir(out_dir).mixing(cfg):
        mixture = mix(cfg)
        mixture.write(Path(out_dir))
    return mixture


def build(cfg: Config, prepared: Prepared | None = None, *, match_tokens: int | None = None,
          mixture: Mixture | None = None) -> Checked:
    """The mixture (unless one built from this config is given, e.g. by a plan) and the preflight of one
    training run. The preflight is taken now, on this machine's free memory, for a training about to start."""
    p = prepared or prepare(cfg)
    # lora.target_modules against the model's layers (built without weights), before any training
    check_target_modules(cfg.lora.target_modules, p.model_ref, trust_remote_code=cfg.model.trust_remote_code)
    m = mixture if mixture is not None else mix(cfg, prepared=p, match_tokens=match_tokens)
    return Checked(prepared=p, mixture=m, preflight=preflight(cfg, m, p.model_ref))


def train(cfg: Config, *, overwrite: bool = False, resume: bool = False, checked: Checked | None = None) -> Path:
    """mix + LoRA training into cfg.output.dir; resumes an interrupted run in the same folder.

    `checked`: this config's mixture and preflight, as validation or a plan built them; built here when
    not given."""
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
    # so a user error never leaves a failed run behind; the preflight raises when it would not fit in memory
    checked = checked or build(cfg)
    p, mixture, pre = checked.prepared, checked.mixture, checked.preflight
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
    """The whole pipeline for one config: check, train, evaluate (when a test set is given), report."""
    from .evaluate.runner import evaluate_run
    from .report.run_report import write_run_report

    if not overwrite and RunDir(cfg.output.dir).is_complete(cfg):  # finished: just (re)evaluate and report
        out = Path(cfg.output.dir)
    else:  # test split, metric names, data, model, ratio: all checked before any training
        out = train(cfg, overwrite=overwrite, resume=resume, checked=check(cfg, overwrite=overwrite))
    if int(os.environ.get("RANK", "0")) != 0:  # under a launcher, rank 0 alone evaluates and reports
        return out
    if cfg.task.test_path:
        evaluate_run(out, cfg=cfg)
    write_run_report(out)
    return out


def evaluate(target: str | Path, overrides: list[str] | None = None, *, base: bool = False,
             limit: int | None = None) -> tuple[dict, Path]:
    """`tellkit eval`: a run folder (its report rewritten too), the run of a config's output.dir, or with
    `base` the config's untrained model (into <output.dir>-base). Returns the scores and their folder."""
    from .evaluate.runner import evaluate_base, evaluate_run
    from .report.run_report import write_run_report

    target = Path(target)
    if target.is_dir():
        result = evaluate_run(target, limit=limit, overrides=overrides)
        write_run_report(target)
        return result, target / "eval"
    cfg = load_config(target, overrides)
    out = Path(cfg.output.dir)
    if not base:
        return evaluate_run(out, limit=limit), out / "eval"
    where = out.parent / (out.name + "-base")
    return evaluate_base(cfg, where, limit=limit), where


def _count(path: str, fmt: str, columns: dict, name: str) -> int:
    """Parse every record of an evaluation file (JSON, fields, UTF-8); errors name file:line."""
    return sum(1 for _ in to_examples(read_records(path), fmt, columns, id_prefix=name))


def _check_metrics(cfg: Config) -> None:
    from . import metrics as registry
    from .evaluate.runner import MODEL_METRICS

    allowed = sorted({*registry.available(), *MODEL_METRICS})
    for name in cfg.eval.metrics:
        if name not in allowed:
            import difflib

            hint = difflib.get_close_matches(name, allowed, n=1)
            raise ConfigError(f"eval.metrics: unknown metric {name!r}"
                              f"{f'; did you mean {hint[0]!r}?' if hint else ''} (allowed: {', '.join(allowed)})")
    if cfg.eval.json_schema is not None:  # the file exists, is JSON, and is a valid JSON Schema
        from .metrics.json_metric import load_schema_validator

        load_schema_validator(cfg.eval.json_schema, what=f"eval.json_schema={cfg.eval.json_schema!r}")
    if "general" in cfg.eval.metrics and not (cfg.general and cfg.general.heldout_path):
        raise ConfigError("eval.metrics has 'general', which needs general.heldout_path (held-out general data)")
    if "general_ood" in cfg.eval.metrics:  # lm-eval knows every task named (no data loaded yet)
        from .evaluate.harness import check_tasks

        check_tasks(cfg)
