"""A finished run as evaluation, probing and shipping read it: its record, its config, its anchor,
and its merged model.

`read_run` reads a run folder; `open_run` (shipping) also accepts a compare folder's ``best/`` (a copy
or symlink of the winning run), or a compare folder itself (its ``best/`` is used).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import Config, load_config
from ..data.anchor import apply_anchor
from ..errors import TellkitError
from .loader import load_model
from .rundir import RunDir


@dataclass(frozen=True)
class RunSource:
    path: Path
    state: dict  # run.json
    cfg: Config  # the run's own config.yaml, or the one its reader was given (new eval settings, a probe's)

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


def read_run(run_dir: str | Path, *, cfg: Config | None = None, overrides: list[str] | None = None) -> RunSource:
    """The finished run in `run_dir`, with `cfg` (else its own config.yaml, with `overrides`)."""
    run = RunDir(run_dir)
    state = run.require_complete()
    return RunSource(path=run.path, state=state,
                     cfg=cfg if cfg is not None else load_config(run.path / "config.yaml", overrides))


def require_adapter(run_dir: Path) -> Path:
    """The run's adapter folder; a TellkitError when training never wrote one."""
    if not (Path(run_dir) / "adapter" / "adapter_config.json").is_file():
        raise TellkitError(f"run {run_dir} has no adapter (adapter/adapter_config.json); train it first")
    return Path(run_dir) / "adapter"


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
    require_adapter(path)
    if not (path / "config.yaml").is_file():
        raise TellkitError(f"run {path} has no config.yaml; it was not written by tellkit train")
    return RunSource(path=path.resolve(), state=state, cfg=load_config(path / "config.yaml"))


def load_merged(src: RunSource):
    """(model, tokenizer): the run's base model with its LoRA merged in, as evaluation loads it."""
    return load_model(src.cfg, src.adapter)
