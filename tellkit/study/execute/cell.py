"""One cell of a sweep or compare: train it (resuming where it stopped), evaluate it, read its result.

Every backend (serial, `--workers N`, Ray) runs a cell through `run_planned`, so a cell's result does
not depend on how it was executed. Results are always read back from the cell's run folder, never
passed between processes: a cell done by another process, node or invocation reads the same.

`python -m tellkit.study.execute.cell PLAN_DIR CELL` runs one cell in its own process (what `--workers`
starts); exit 2 is a user error (not retried), a death by signal is retried by the caller.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from ...config import Config
from ...errors import TellkitError
from ...evaluate.runner import evaluate_base, evaluate_run, missing_metrics, top_up
from ...methods import METHODS
from ...mix import Mixture
from ...mix.prepare import prepare
from ...pipeline import build, train
from ...runs.rundir import RunDir
from ...runs.source import read_run
from .plan import Cell, Plan, cell_config, load_plan, two_axes

# A train() interrupted by Ctrl-C records "failed: KeyboardInterrupt"; that cell resumes from its
# checkpoint like a killed one, rather than restarting as a real failure does.
INTERRUPTED = "KeyboardInterrupt"


def matched_cell(cfg: Config, out_dir: Path, method: str, tell_cell: dict, **changes) -> tuple[Config, int]:
    """The sft-matched (`method`) twin of a TELL cell: the task data repeated to TELL's training tokens (the same
    compute). With train.epochs, one pass holds TELL's tokens per epoch and the same epochs run; its
    step count follows from its examples (train.batch_size counts examples, and task examples are not
    as long as general ones), and is shown next to TELL's. With train.max_steps, the same steps run
    over one pass of TELL's tokens."""
    cost = tell_cell["cost"]
    if cfg.train.max_steps:
        return (cell_config(cfg, out_dir, method, tell_cell["seed"], max_steps=cost["optimizer_steps"],
                            **changes), cost["train_tokens"])
    c = cell_config(cfg, out_dir, method, tell_cell["seed"], **changes)
    return c, round(cost["train_tokens"] / cfg.train.epochs)


def run_cell(c: Config, prepared, match_tokens: int | None = None, mixture: Mixture | None = None) -> dict:
    """Train (unless finished; an interrupted cell resumes, a failed one restarts) and evaluate one cell.

    `match_tokens` (sft-matched): the task data is repeated to that many tokens (the TELL cell's).
    `mixture`: the one its plan built for `c`, so it is not built again. A folder holding a finished run
    of another config is not taken as done: train() refuses it."""
    run = RunDir(c.output.dir)
    if not run.is_complete(c):
        state = run.state() or {}
        failed = state.get("status") == "failed" and state.get("reason") != INTERRUPTED
        train(c, overwrite=failed, checked=build(c, prepared, match_tokens=match_tokens, mixture=mixture))
    if not (run.path / "eval" / "scores.json").exists():
        evaluate_run(run.path, cfg=c)
    elif not _evaluated(c, run.path / "eval"):  # evaluated before a model metric was asked for: add it only
        top_up(c, run.path / "eval", adapter=run.path / "adapter")
    return cell_result(c)


def _evaluated(c: Config, eval_dir: Path) -> bool:
    """scores.json holds every metric `c` asks for (a model metric can be added to a finished evaluation)."""
    path = eval_dir / "scores.json"
    return path.exists() and not missing_metrics(c, json.loads(path.read_text(encoding="utf-8")))


def cell_result(c: Config) -> dict:
    """A trained and evaluated cell's result, from its run folder."""
    run = read_run(c.output.dir, cfg=c)
    scores = json.loads((run.path / "eval" / "scores.json").read_text(encoding="utf-8"))
    return {"method": c.mix.method, "seed": c.mix.seed, "ratio": c.mix.ratio, "token_budget": c.task.token_budget,
            "run_dir": str(run.path), "metrics": scores["metrics"], "cost": cost(run.state),
            "fingerprint": run.state["mixture"].get("fingerprint"),
            "samples": _samples(run.path / "eval" / "predictions.jsonl")}


def base_cell(cfg: Config, base_dir: Path) -> dict:
    """The untrained model, evaluated once (greedy decoding does not depend on the seed), general ability
    included: it is the reference every method's change is measured from."""
    cfg = two_axes(cfg)
    scores = (evaluate_base(cfg, base_dir) if not (base_dir / "scores.json").exists()
              else top_up(cfg, base_dir, adapter=None))  # reads it, adding a model metric asked for since
    return {"method": "base", "run_dir": str(base_dir), "metrics": scores["metrics"],
            "cost": {"task_tokens": 0, "train_tokens": 0, "optimizer_steps": 0},
            "samples": _samples(base_dir / "predictions.jsonl")}


def cost(state: dict) -> dict:
    m, t = state["mixture"], state["train"]
    unique_task = m["task_tokens_reference"] / max(m["task_repeats"], 1)
    return {"task_tokens": m["task"]["tokens"], "unique_task_tokens": int(unique_task),
            "general_tokens": m["general"]["tokens"], "train_tokens": t["train_tokens"],
            "optimizer_steps": t["optimizer_steps"],
            "task_epochs": round(m["task"]["tokens"] * (t["train_tokens"] / max(m["total"]["tokens"], 1))
                                 / unique_task, 2) if unique_task else 0.0,
            "wall_seconds": t["wall_seconds"], "tokens_per_second": t["tokens_per_second"]}


def _samples(path: Path, k: int = 3) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[:k]]


# --- planned cells ---------------------------------------------------------------------------

def _config(plan: Plan, cell: Cell) -> tuple[Config, int | None]:
    """The cell's config and match_tokens: an sft-matched cell takes its optimizer steps and tokens
    from its finished TELL cell (its declared dependency)."""
    cfg, where = plan.base_config(), plan.folder / cell.run_dir
    if METHODS[cell.method].matched:
        return matched_cell(cfg, where, cell.method, result(plan, plan.cell(cell.depends_on)),
                            ratio=cell.ratio, token_budget=cell.task_tokens)
    return cell_config(cfg, where, cell.method, cell.seed, ratio=cell.ratio, token_budget=cell.task_tokens), None


def is_done(plan: Plan, cell: Cell) -> bool:
    """Trained with this cell's config and evaluated (a reused cell: its source is)."""
    if cell.reuses:
        return is_done(plan, plan.cell(cell.reuses))
    if not METHODS[cell.method].trains:
        return _evaluated(two_axes(plan.base_config()), plan.folder / cell.run_dir)
    if cell.depends_on and not is_done(plan, plan.cell(cell.depends_on)):
        return False
    c = _config(plan, cell)[0]
    return RunDir(c.output.dir).is_complete(c) and _evaluated(c, Path(c.output.dir) / "eval")


def result(plan: Plan, cell: Cell) -> dict:
    """A done cell's result, read from disk (a reused cell reports its source's run as its own method)."""
    if cell.reuses:
        return {**result(plan, plan.cell(cell.reuses)), "method": cell.method}
    if not METHODS[cell.method].trains:
        return base_cell(plan.base_config(), plan.folder / cell.run_dir)
    return cell_result(_config(plan, cell)[0])


def events(plan: Plan, cell: Cell) -> list[dict]:
    """The cell's attempt log (start / done / failed records, one JSON line each)."""
    path = plan.log_dir / f"{cell.name}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _log(plan: Plan, cell: Cell, event: str, **fields) -> None:
    # One appender at a time: the cell lock is held. A short line is one write(), so a kill leaves
    # either the whole record or none.
    line = json.dumps({"event": event, "time": round(time.time(), 3), "pid": os.getpid(),
                       "host": socket.gethostname(), **fields}) + "\n"
    with open(plan.log_dir / f"{cell.name}.jsonl", "a", encoding="utf-8") as f:
        f.write(line)


@contextlib.contextmanager
def _lock(plan: Plan, cell: Cell):
    """Held while a cell runs: a second invocation (or a stale retry) waits instead of training the
    same folder at the same time. The kernel drops it when the holder dies."""
    plan.log_dir.mkdir(parents=True, exist_ok=True)
    with open(plan.log_dir / f"{cell.name}.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def output_to_log(plan: Plan, cell: Cell):
    """Send a cell's own output (training progress, warnings) to log/CELL.log, for in-process cells;
    the terminal keeps one progress line for the whole sweep."""
    plan.log_dir.mkdir(parents=True, exist_ok=True)
    with open(plan.log_dir / f"{cell.name}.log", "a", encoding="utf-8") as f, \
            contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        yield


def run_planned(plan: Plan, name: str, prepared=None) -> bool:
    """Run one planned cell unless it is done. Returns True when this call ran it."""
    cell = plan.cell(name)
    if cell.reuses or is_done(plan, cell):
        return False
    with _lock(plan, cell):
        if is_done(plan, cell):  # finished by whoever held the lock before us
            return False
        _log(plan, cell, "start", attempt=1 + sum(e["event"] == "start" for e in events(plan, cell)))
        start = time.perf_counter()
        try:
            if not METHODS[cell.method].trains:
                base_cell(plan.base_config(), plan.folder / cell.run_dir)
            else:
                c, match = _config(plan, cell)
                run_cell(c, prepared or prepare(plan.base_config()), match, plan.mixtures.pop(name, None))
        except TellkitError as e:
            _log(plan, cell, "failed", reason=str(e))
            raise
        _log(plan, cell, "done", seconds=round(time.perf_counter() - start, 2))
    return True


def main(argv: list[str] | None = None) -> int:
    folder, name = argv if argv is not None else sys.argv[1:]
    if os.environ.get("OMP_NUM_THREADS"):  # the worker's share of the cores (set by the launcher)
        import torch

        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    try:
        run_planned(load_plan(folder), name)
    except TellkitError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
