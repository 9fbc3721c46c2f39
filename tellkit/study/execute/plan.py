"""The plan of a sweep or compare: every cell, decided once, before any cell trains.

A plan is a function of the config and the data only. It lists the cells with their compute budget
and data subset (the mixture each will train on, checked buildable now and identified by a hash of
its example order), the dependencies between cells (an sft-matched cell copies the optimizer steps
and tokens of its TELL cell, so it names that cell and waits for it), the cells that reuse another's
run (in a sweep, sft+anchor is tell at ratio 0: the same mixture), and the cells a compute budget
left out. It is written to `plan.json` in the output folder, with each cell's estimated peak memory
(outside the plan's identity: it depends on the machine, not on what is computed), which `--workers`
uses on CPU to start only as many cells at once as the RAM holds. Serial runs, `--workers`, Ray and a
sweep split over invocations with `--only` all execute cells of this one plan, so how the work is
split cannot change what is computed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ...config import Config
from ...errors import ConfigError, TellkitError
from ...io import write_json_atomic
from ...methods import METHODS
from ...mix import Mixture
from ...mix.prepare import mix
from ...owned import require_plan_folder
from ...pipeline import build, check, validate
from ...runs.rundir import training_hash

PLAN = "plan.json"


@dataclass
class Cell:
    name: str
    method: str
    seed: int | None  # None: base (evaluated once)
    run_dir: str  # relative to the plan's folder
    ratio: float | None = None  # None: the config's own mix.ratio (compare)
    task_tokens: int | None = None  # the task token budget; None: the config's task.token_budget
    depends_on: str | None = None  # sft-matched: the TELL cell whose compute it copies
    reuses: str | None = None  # a cell whose run is this one's (sweep: sft+anchor = tell at ratio 0)
    training_hash: str = ""
    budget: dict = field(default_factory=dict)


@dataclass
class Plan:
    kind: str  # "sweep" | "compare"
    folder: Path
    config: dict  # the user's config (model_dump), from which every cell's config is derived
    cells: list[Cell]
    left_out: list[dict] = field(default_factory=list)  # {"name", "reason"}: planned, not run
    notes: dict = field(default_factory=dict)
    memory_gib: dict = field(default_factory=dict)  # cell name -> estimated peak GiB on this machine's device
    _cfg: Config | None = field(default=None, repr=False, compare=False)
    # cell name -> the mixture checked for it, which the cell trains on when it runs in this process
    # (serial execution): each mixture is built once. A worker or Ray task builds its own.
    mixtures: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def log_dir(self) -> Path:
        return self.folder / "log"

    def cell(self, name: str) -> Cell:
        for c in self.cells:
            if c.name == name:
                return c
        raise TellkitError(f"{self.folder / PLAN} has no cell {name!r}")

    def base_config(self) -> Config:
        if self._cfg is None:
            from ...config.load import validate as config_from_dump

            self._cfg = config_from_dump(self.config)
        return self._cfg

    def identity(self) -> str:
        """What the plan computes: the cells (with their training configs and data) and what is left out."""
        body = [asdict(c) for c in self.cells]
        blob = json.dumps({"kind": self.kind, "cells": body, "left_out": self.left_out}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def to_json(self) -> dict:
        return {"kind": self.kind, "identity": self.identity(), "cells": [asdict(c) for c in self.cells],
                "left_out": self.left_out, "notes": self.notes, "memory_gib": self.memory_gib,
                "config": self.config}


def two_axes(cfg: Config) -> Config:
    """The config a compare or sweep cell (base included) is evaluated with: general ability out of
    distribution (`general_ood`) joins eval.metrics while eval.general_tasks names tasks, so every
    verdict has both axes; eval.general_tasks: [] leaves the task score alone."""
    if not cfg.eval.general_tasks or "general_ood" in cfg.eval.metrics:
        return cfg
    c = cfg.model_copy(deep=True)
    c.eval.metrics = [*c.eval.metrics, "general_ood"]
    return c


def cell_config(cfg: Config, out_dir: Path, method: str, seed: int, *, ratio: float | None = None,
                token_budget: int | None = None, max_steps: int | None = None) -> Config:
    """One cell of a comparison or sweep: the user's config with method, seed (mixture and training),
    and optionally ratio, task token budget and a step count changed; general ability measured (two_axes)."""
    c = two_axes(cfg).model_copy(deep=True)
    c.mix.method, c.mix.seed, c.train.seed = method, seed, seed
    if ratio is not None:
        c.mix.ratio = ratio
    if token_budget is not None:
        c.task.token_budget = token_budget
    if max_steps:
        c.train.max_steps = max_steps
    c.output.dir = str(out_dir)
    return c


def make_plan(kind: str, cfg: Config, folder: Path, cells: list[Cell], prepared, *, hint: str,
              left_out: list[dict] | None = None, notes: dict | None = None) -> Plan:
    """Check that every cell can be built and record its data and compute budget.

    The whole validation runs once per method (test set, metrics, anchor); every cell's own mixture is
    then built (indices only, nothing written), which is where an infeasible ratio or scale shows, and
    its training's peak memory estimated (a cell that cannot fit stops the plan too). Cells in
    `left_out` are not checked: they never run. `hint` says which keys change a ratio."""
    validated: set[str] = set()
    memory: dict[str, float] = {}
    mixtures = {}
    for cell in cells:
        if not METHODS[cell.method].trains or cell.reuses:
            continue
        c = cell_config(cfg, folder / cell.run_dir, cell.method, cell.seed, ratio=cell.ratio,
                        token_budget=cell.task_tokens)
        cell.training_hash = training_hash(c)
        if METHODS[cell.method].matched:  # its mixture is its TELL cell's data, repeated to TELL's tokens
            cell.budget = {"same_compute_as": cell.depends_on}
            continue
        cell.budget, gib, mixtures[cell.name] = _checked(kind, cell, c, prepared, hint,
                                                         validate_first=cell.method not in validated)
        validated.add(cell.method)
        if gib is not None:
            memory[cell.name] = round(gib, 3)
    for cell in cells:
        if cell.reuses:
            cell.budget = {"same_run_as": cell.reuses}
    if not validated and cells:  # base alone: the test set and metrics still need checking
        validate(cell_config(cfg, folder, "sft", 0), check_output=False, prepared=prepared)
    return Plan(kind=kind, folder=Path(folder), config=cfg.model_dump(mode="json"), cells=cells,
                left_out=left_out or [], notes=notes or {}, memory_gib=_fill_memory(cells, memory), _cfg=cfg,
                mixtures=mixtures)


def _fill_memory(cells: list[Cell], memory: dict[str, float]) -> dict[str, float]:
    """Estimates for the cells whose data is not known before they run: an sft-matched cell (task data
    repeated to its TELL cell's tokens) takes the largest estimate of its scale, base (evaluation only)
    the smallest of all."""
    if not memory:
        return {}
    for cell in cells:
        if METHODS[cell.method].matched:
            same_scale = [memory[c.name] for c in cells if c.name in memory and c.task_tokens == cell.task_tokens]
            memory[cell.name] = max(same_scale or memory.values())
        elif not METHODS[cell.method].trains:
            memory[cell.name] = min(memory.values())
    return memory


def _checked(kind: str, cell: Cell, c: Config, prepared, hint: str, *,
             validate_first: bool) -> tuple[dict, float | None, Mixture]:
    """The cell's data and compute budget, its estimated peak memory in GiB (None: not estimable), and its
    mixture. The first cell of a method is validated in full (test set, metrics, anchor), the others built."""
    try:
        built = check(c, check_output=False, prepared=prepared) if validate_first else build(c, prepared)
        m, pre = built.mixture, built.preflight  # the preflight raised if the cell cannot fit in memory
    except TellkitError as e:
        raise type(e)(_explain(kind, cell, c, prepared, hint, e)) from None
    r = m.report
    budget = {"task_examples": r["task"]["unique_examples"], "task_tokens": r["task"]["tokens"],
              "general_examples": r["general"]["examples"], "general_tokens": r["general"]["tokens"],
              "mixture_tokens": r["total"]["tokens"], "epochs": c.train.epochs, "max_steps": c.train.max_steps,
              "data_sha256": hashlib.sha256(np.ascontiguousarray(m.order).tobytes()).hexdigest()[:16]}
    return budget, (pre.memory.total_gib if pre.memory else None), m


def _explain(kind: str, cell: Cell, c: Config, prepared, hint: str, e: TellkitError) -> str:
    """Name the cell; when its general volume is what fails, say how much is missing and what to change."""
    if METHODS[c.mix.method].general and c.mix.ratio > 0 and not c.mix.allow_general_repeats:
        general = prepared.general()
        available = int(general.data.column("n_tokens").to_numpy().sum()) if general is not None else 0
        c0 = c.model_copy(deep=True)
        c0.mix.ratio = 0.0
        try:
            task_tokens = mix(c0, prepared=prepared).report["task_tokens_reference"]
        except TellkitError:
            task_tokens = None
        if task_tokens is not None:
            needed = c.mix.ratio * task_tokens
            if available < needed * (1 - c.mix.tolerance):
                return (f"{kind} cell {cell.name} needs {int(needed):,} general tokens (ratio {c.mix.ratio:g} x "
                        f"{task_tokens:,} task tokens) but the general data has {available:,}; "
                        + hint.format(ratio=c.mix.ratio))
    return f"{kind} cell {cell.name}: {e}"


def store(plan: Plan, *, replan: bool = False) -> None:
    """Write plan.json before any cell trains. A folder planned from another grid or other data is
    refused (unless replan): splitting or resuming must not change the cells."""
    path = plan.folder / PLAN
    new = plan.to_json()
    require_plan_folder(plan.folder, plan.kind)  # never write into a folder of the user's
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        if old.get("identity") != new["identity"] and not replan:
            raise TellkitError(f"{plan.folder} holds a {plan.kind} planned from another grid or other data "
                               f"({_diff(old, new)}); to run part of one {plan.kind} keep its config and pass "
                               "--only; to plan the new grid and keep the finished cells it shares, pass "
                               "--replan; or use another output.dir")
        if old == new:
            return
    write_json_atomic(path, new)


def _diff(old: dict, new: dict) -> str:
    before = {c["name"]: c for c in old.get("cells", [])}
    after = {c["name"]: c for c in new["cells"]}
    parts = []
    for label, names in (("new", [n for n in after if n not in before]),
                         ("dropped", [n for n in before if n not in after]),
                         ("changed", [n for n in after if n in before and after[n] != before[n]])):
        if names:
            parts.append(f"{label}: {', '.join(names[:3])}{f' and {len(names) - 3} more' if len(names) > 3 else ''}")
    return "; ".join(parts) or "left-out cells differ"


def load_plan(folder: str | Path) -> Plan:
    path = Path(folder) / PLAN
    if not path.exists():
        raise TellkitError(f"{folder} holds no {PLAN}: not a sweep or compare folder")
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        d = None
    if not (isinstance(d, dict) and d.get("kind") in ("sweep", "compare") and isinstance(d.get("cells"), list)
            and "config" in d):
        raise TellkitError(f"{path} was not written by tellkit (not a sweep or compare plan); give the output.dir "
                           "of a tellkit sweep or compare")
    return Plan(kind=d["kind"], folder=Path(folder), config=d["config"], cells=[Cell(**c) for c in d["cells"]],
                left_out=d.get("left_out", []), notes=d.get("notes", {}), memory_gib=d.get("memory_gib", {}))


SELECT_KEYS = {"seed": int, "task_tokens": int, "ratio": float, "method": str}


def select(plan: Plan, only: list[str] | None) -> list[str]:
    """The cells `--only key=v1,v2` picks (every key must match; a cell without that key, e.g. base for
    seed, is kept), plus the cells they depend on or reuse. In plan order."""
    wanted: dict[str, set] = {}
    for item in only or []:
        key, sep, values = item.partition("=")
        if not sep or key not in SELECT_KEYS:
            raise ConfigError(f"--only {item!r}: use KEY=V1,V2 with KEY one of {', '.join(SELECT_KEYS)}")
        try:
            wanted.setdefault(key, set()).update(SELECT_KEYS[key](v) for v in values.split(",") if v)
        except ValueError:
            raise ConfigError(f"--only {item!r}: {key} takes {SELECT_KEYS[key].__name__} values") from None
    picked = {c.name for c in plan.cells
              if all(getattr(c, k) is None or getattr(c, k) in vs for k, vs in wanted.items())}
    if wanted and not picked:
        raise ConfigError(f"--only {' '.join(only)} matches no cell of this {plan.kind}")
    grew = True
    while grew:  # a dependency or reused run must run too (or already be done)
        extra = {d for c in plan.cells if c.name in picked for d in (c.depends_on, c.reuses) if d} - picked
        picked |= extra
        grew = bool(extra)
    return [c.name for c in plan.cells if c.name in picked]
