"""`tellkit validate`: every check that can fail, before any model weights load or training starts.

Cheapest first: the config itself was checked by `load_config`; then the
anchor, the output folder, the evaluation files and metric names, the model
reference and its tokenizer (no weights), every line of the task and general
data (tokenized, as training will see it) with the ratio's feasibility, and
last the step plan and whether training fits in memory. Every failure is a
`TellkitError` naming the file:line or key.
"""

from __future__ import annotations

from .anchor import anchor_text
from .config import Config
from .data.formats import to_examples
from .data.readers import read_records
from .errors import ConfigError
from .models.modules import check_target_modules
from .prepare import ANCHORED, Prepared, mix, prepare
from .rundir import RunDir
from .track import check_trackers
from .train.memory import preflight


def validate(cfg: Config, *, overwrite: bool = False, check_output: bool = True,
             prepared: Prepared | None = None) -> dict:
    """Config, anchor, output folder, eval files, model reference, every data line, ratio. Returns a summary.

    compare/sweep pass check_output=False: their output.dir holds many cells, not one run. Callers that
    go on to train pass their `prepared` so the tokenizer and tokenized data are loaded once."""
    summary: dict = {}
    method = cfg.mix.method
    anchor = anchor_text(cfg.anchor)  # empty anchor, missing or non-UTF-8 anchor.file
    if method in ANCHORED and anchor is None:
        raise ConfigError(f"mix.method={method} needs an anchor: set anchor.text or anchor.file")
    if method == "sft-matched":
        raise ConfigError("mix.method=sft-matched copies a tell run's token count, so it only runs inside "
                          "`tellkit compare` (compare.methods); use tell, sft, sft+anchor or general-only here")
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
    check_target_modules(cfg.lora.target_modules, prepared.model_ref, trust_remote_code=cfg.model.trust_remote_code)
    summary["anchor"] = anchor
    mixture = mix(cfg, prepared=prepared)  # tokenizes every task/general line; ratio feasibility; writes nothing
    summary["task_records"] = len(mixture.task)
    if mixture.general is not None:
        summary["general_records"] = len(mixture.general)
    report = mixture.report
    summary["mixture"] = {k: report[k] for k in ("requested_ratio", "achieved_ratio", "task", "general", "total")}
    # the step plan and the memory estimate; raises when training would not fit (unless train.auto_fit)
    summary["training"] = preflight(cfg, mixture, prepared.model_ref).summary()
    return summary


def _count(path: str, fmt: str, columns: dict, name: str) -> int:
    """Parse every record of an evaluation file (JSON, fields, UTF-8); errors name file:line."""
    return sum(1 for _ in to_examples(read_records(path), fmt, columns, id_prefix=name))


def _check_metrics(cfg: Config) -> None:
    from .evaluate import metrics as registry
    from .evaluate.runner import MODEL_METRICS

    allowed = sorted({*registry.available(), *MODEL_METRICS})
    for name in cfg.eval.metrics:
        if name not in allowed:
            import difflib

            hint = difflib.get_close_matches(name, allowed, n=1)
            raise ConfigError(f"eval.metrics: unknown metric {name!r}"
                              f"{f'; did you mean {hint[0]!r}?' if hint else ''} (allowed: {', '.join(allowed)})")
    if cfg.eval.json_schema is not None:  # the file exists, is JSON, and is a valid JSON Schema
        from .evaluate.metrics.json_metric import load_schema_validator

        load_schema_validator(cfg.eval.json_schema, what=f"eval.json_schema={cfg.eval.json_schema!r}")
    if "general" in cfg.eval.metrics and not (cfg.general and cfg.general.heldout_path):
        raise ConfigError("eval.metrics has 'general', which needs general.heldout_path (held-out general data)")
    if "general_ood" in cfg.eval.metrics:  # lm-eval knows every task named (no data loaded yet)
        from .evaluate.harness import check_tasks

        check_tasks(cfg)
