"""A finished run as something to ship: its config, its anchor, and its merged model.

Accepts a run folder, a compare folder's ``best/`` (a copy or symlink of the winning run), or a
compare folder itself (its ``best/`` is used).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import Config, load_config
from ..data.anchor import apply_anchor
from ..errors import TellkitError
from .rundir import RunDir


@dataclass(frozen=True)
class RunSource:
    path: Path
    state: dict  # run.json
    cfg: Config  # the run's own config.yaml

    @property
    def anchor(self) -> str | None:
        return self.state.get("anchor")

    @property
    def anchor_position(self) -> str:
        return self.state.get("anchor_position") or self.cfg.anchor.position

    @property
    def anchor_separator(self) -> str:
        return self.cfg.anchor.separator

    @property
    def adapter(self) -> Path:
        return self.path / "adapter"

    def anchored(self, messages: list[dict]) -> list[dict]:
        """``messages`` with the run's anchor put in, exactly as training and evaluation put it."""
        return apply_anchor(messages, self.anchor, self.anchor_position, self.anchor_separator)


def open_run(run_dir: str | Path) -> RunSource:
    """The finished run in ``run_dir``; a one-line TellkitError for anything that is not one."""
    path = Path(run_dir).expanduser()
    if not path.is_dir():
        raise TellkitError(f"{path} is not a folder; give a run folder (output.dir of a finished run) "
                           "or a compare folder's best/")
    if not (path / "run.json").exists() and (path / "best" / "run.json").exists():
        path = path / "best"  # a compare folder: ship its winner
    elif (path / "comparison.json").exists() and not (path / "run.json").exists():
        raise TellkitError(f"compare folder {path} has no best/ (no trained method beat base); give one of its "
                           "run folders, e.g. " + str(path / "tell-s0"))
    state = RunDir(path).require_complete()
    if not (path / "adapter" / "adapter_config.json").is_file():
        raise TellkitError(f"run {path} has no adapter (adapter/adapter_config.json); train it first")
    if not (path / "config.yaml").is_file():
        raise TellkitError(f"run {path} has no config.yaml; it was not written by tellkit train")
    return RunSource(path=path.resolve(), state=state, cfg=load_config(path / "config.yaml"))


def load_merged(src: RunSource):
    """(model, tokenizer): the run's base model with its LoRA merged in (plain-model speed, no peft at use)."""
    from ..evaluate.runner import _load  # the loader evaluation uses, so both see the same model

    return _load(src.cfg, src.adapter)
