"""The Python API: one function per `tellkit` command, each a call into the library below it.

    import tellkit.api as tk
    cfg = tk.load("examples/quickstart.yaml", ["mix.ratio=30"])
    run_dir = tk.run(cfg)

cli.py imports this module and nothing else of tellkit's pipeline; nothing in tellkit imports it. Imports
are lazy, so the CLI starts without torch.
"""

from __future__ import annotations

from pathlib import Path

from .config import Config, load_config


def load(path: str | Path, overrides: list[str] | None = None) -> Config:
    return load_config(path, overrides)


# --- one config: tellkit validate / mix / train / run / eval -------------------------------------

def validate(cfg: Config, *, overwrite: bool = False) -> dict:
    """Every check that can fail, before any weights load; returns a summary (see tellkit.pipeline)."""
    from .pipeline import validate

    return validate(cfg, overwrite=overwrite)


def mix(cfg: Config, out_dir: str | Path | None = None):
    """The mixture of cfg.mix.method; written (mixture.jsonl + mixture.json) to `out_dir` when given."""
    if out_dir is None:
        from .mix.prepare import mix

        return mix(cfg)
    from .pipeline import write_mixture

    return write_mixture(cfg, out_dir)


def train(cfg: Config, *, overwrite: bool = False, resume: bool = False) -> Path:
    """mix + LoRA training into cfg.output.dir; resumes an interrupted run in the same folder."""
    from .pipeline import train

    return train(cfg, overwrite=overwrite, resume=resume)


def run(cfg: Config, *, overwrite: bool = False, resume: bool = False) -> Path:
    """The whole pipeline for one config: validate, mix, train, evaluate (when a test set is given), report."""
    from .pipeline import run

    return run(cfg, overwrite=overwrite, resume=resume)


def evaluate(target: str | Path, overrides: list[str] | None = None, *, base: bool = False,
             limit: int | None = None) -> tuple[dict, Path]:
    """Evaluate a run folder or a config's run (with `base`: its untrained model); returns (scores, folder)."""
    from .pipeline import evaluate

    return evaluate(target, overrides, base=base, limit=limit)


# --- many runs: tellkit compare / sweep / report --------------------------------------------------

def compare(cfg: Config, *, workers: int = 1, ray: str | None = None, cell_cpus: int = 1) -> dict:
    """TELL against its baselines over seeds; returns comparison.json's content (with the winner)."""
    from .study.compare import compare

    return compare(cfg, workers=workers, ray=ray, cell_cpus=cell_cpus)


def sweep(cfg: Config, *, workers: int = 1, ray: str | None = None, cell_cpus: int = 1,
          only: list[str] | None = None, replan: bool = False) -> dict:
    """The ratio x scale x method x seed grid; returns its summary ({"partial": True, ...} while cells are missing)."""
    from .study.sweep import sweep

    return sweep(cfg, workers=workers, ray=ray, cell_cpus=cell_cpus, only=only, replan=replan)


def report(folder: str | Path) -> tuple[Path, Path, dict | None]:
    """(Re)write a run, compare or sweep folder's report: (report.md, report.html, a sweep's summary or None)."""
    from .study.rerender import write_folder_report

    return write_folder_report(folder)


# --- inside the model: tellkit probe / anchor draft / anchor rank ---------------------------------

def probe(cfg: Config, *, run_dir: str | Path | None = None, out_dir: str | Path | None = None) -> dict:
    """Hidden-state separation of task(+anchor) vs general queries (and a run's adapter); returns probe.json."""
    from .probe.probe import probe

    return probe(cfg, run_dir=run_dir, out_dir=out_dir)


def draft_anchors(cfg: Config, *, out: str | Path | None = None, k: int = 4, n: int = 5,
                  model: str | None = None, max_new_tokens: int = 48, seed: int = 0) -> tuple[list[str], Path]:
    """Anchor candidates drafted by a model (+ one from the data), written to `out`
    (default <output.dir>/anchors/anchors.txt); returns them and the file."""
    from .probe.draft import draft_anchors, write_anchor_file

    anchors = draft_anchors(cfg, k=k, n=n, model_ref=model, max_new_tokens=max_new_tokens, seed=seed)
    return anchors, write_anchor_file(out or Path(cfg.output.dir) / "anchors" / "anchors.txt", anchors)


def rank_anchors(cfg: Config, anchors_file: str | Path, *, out_dir: str | Path | None = None) -> list[dict]:
    """The anchors of `anchors_file` ranked by base-model separation, best first (written to `out_dir`)."""
    from .probe.draft import read_anchor_file
    from .probe.rank import rank_anchors

    return rank_anchors(cfg, read_anchor_file(anchors_file), out_dir=out_dir)


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


# --- the text the CLI prints, rendered next to the data it shows -----------------------------------

def preflight_lines(summary: dict) -> list[str]:
    """The step plan and memory estimate of a `validate` summary's "training" entry, as lines."""
    from .train.memory import preflight_lines

    return preflight_lines(summary)


def verdict_table(winner: dict) -> str:
    """A compare's winner record as a plain-text table."""
    from .study.winner import verdict_table

    return verdict_table(winner)
