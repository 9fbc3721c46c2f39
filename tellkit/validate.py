"""`tellkit validate`: every check that can fail, before any model weights load or training starts."""

from __future__ import annotations

from .api import mix, prepare
from .config import Config
from .data.formats import to_examples
from .data.readers import read_records
from .errors import TellkitError
from .rundir import RunDir, training_hash


def validate(cfg: Config, *, overwrite: bool = False) -> dict:
    """Config, anchor, every data line, model reference, ratio feasibility, output folder. Returns a summary."""
    summary: dict = {}
    for name, src in (("task", cfg.task), ("general", cfg.general)):
        if src is not None:
            summary[f"{name}_records"] = sum(1 for _ in to_examples(read_records(src.path), src.format,
                                                                    src.columns, id_prefix=name))
    for name, path in (("task test", cfg.task.test_path), ("general heldout", cfg.general and cfg.general.heldout_path)):
        if path:
            summary[f"{name} records"] = sum(1 for _ in to_examples(read_records(path), "auto",
                                                                    cfg.task.columns if name == "task test" else {},
                                                                    id_prefix=name))
    prepared = prepare(cfg)
    summary["model"] = prepared.model_ref
    summary["anchor"] = prepared.anchor
    report = mix(cfg, prepared=prepared).report  # token counts + ratio feasibility, nothing written
    summary["mixture"] = {k: report[k] for k in ("requested_ratio", "achieved_ratio", "task", "general", "total")}
    state = RunDir(cfg.output.dir).state()
    if state and not overwrite:
        if state.get("training_hash") != training_hash(cfg):
            raise TellkitError(f"output.dir {cfg.output.dir} holds another run; choose another folder or pass --overwrite")
        summary["output"] = f"{cfg.output.dir} holds this run ({state.get('status')}): training would resume or stop"
    return summary
