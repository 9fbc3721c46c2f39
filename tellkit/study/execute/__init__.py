"""Executing a plan: the cells of a sweep or compare, serially, on N local workers, or on Ray.

The plan (plan.py) is decided first and written to the output folder; the backends only decide where
and when each cell runs. Every cell runs through cell.run_planned and every result is read back from
its run folder, so serial, `--workers N` and `--ray` give the same rows.
"""

from __future__ import annotations

from ...errors import ConfigError, TellkitError
from .cell import is_done
from .plan import Plan


def execute(plan: Plan, names: list[str], *, workers: int = 1, ray: str | None = None, cell_cpus: int = 1,
            prepared=None) -> list[str]:
    """Run the cells `names` of `plan` that are not done yet; returns the ones that ran.

    Failed cells do not stop the others (except the cells that depend on them); they are reported
    together at the end, and rerunning the command retries them."""
    check_execution(workers=workers, ray=ray, cell_cpus=cell_cpus)
    todo = [n for n in names if not plan.cell(n).reuses and not is_done(plan, plan.cell(n))]
    if not todo:
        return []
    from .progress import Progress

    progress = Progress(todo, plan.kind, plan.log_dir)
    try:
        if ray:
            from .ray_backend import run_ray

            failures = run_ray(plan, todo, ray, cell_cpus, progress)
        elif workers > 1:
            from .local import run_workers

            failures = run_workers(plan, todo, workers, progress)
        else:
            from .local import run_serial

            failures = run_serial(plan, todo, progress, prepared)
    finally:
        progress.close()
    if failures:
        listed = "; ".join(f"{n}: {' '.join(why.split())}" for n, why in list(failures.items())[:2])
        more = f"; and {len(failures) - 2} more" if len(failures) > 2 else ""
        raise TellkitError(f"{len(failures)} of {len(todo)} {plan.kind} cells failed ({listed}{more}); fix the "
                           f"cause and rerun the same command: finished cells are kept (logs: {plan.log_dir})")
    return todo


def check_execution(*, workers: int = 1, ray: str | None = None, cell_cpus: int = 1) -> None:
    """The execution options are usable; compare and sweep call this before they plan or write anything."""
    if workers < 1 or cell_cpus < 1:
        raise ConfigError("--workers and --cell-cpus take a number of at least 1")
    if ray and workers > 1:
        raise ConfigError("--workers is for one machine; with --ray every cell is a Ray task (size it with --cell-cpus)")
