"""Cells on a Ray cluster (`--ray auto|ADDRESS|local`; `pip install 'tellkit[ray]'`).

Ray is the scheduler: each cell is one Ray task that declares its resources (one GPU where the
cluster has GPUs, `--cell-cpus` CPUs, and on a CPU-only cluster its estimated peak RAM, so Ray puts
no more cells on a node than its memory holds), an sft-matched task takes its TELL task's result as an
argument so Ray starts it only after that cell is done, and Ray reruns a task whose worker or node
died (`max_retries`); the rerun resumes from the cell's last checkpoint. Cells write only into their
own folders under the sweep folder, which must therefore be on storage every node sees at the same
path: that is checked before any cell starts.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from ...errors import ConfigError, TellkitError
from ...train.memory import GIB
from .cell import events, output_to_log, run_planned
from .local import MAX_RETRIES, cores
from .plan import Plan, load_plan
from .progress import Progress


def _ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs Ray: pip install 'tellkit[ray]'") from None
    return ray


def _cell_task(folder: str, name: str, threads: int, *after) -> str:
    """One cell, inside a Ray worker (`after`: the result of the cell it waits for)."""
    import torch

    torch.set_num_threads(threads)  # the task's declared CPUs
    plan = load_plan(folder)
    with output_to_log(plan, plan.cell(name)):
        run_planned(plan, name)
    return name


def _probe(marker: str, token: str, paths: list[str]) -> str:
    """Run on every node: '' when it sees the sweep folder and the inputs, else what it misses."""
    import socket

    try:
        seen = Path(marker).read_text(encoding="utf-8") == token
    except OSError:
        seen = False
    missing = [p for p in paths if not Path(p).exists()]
    if seen and not missing:
        return ""
    what = ([f"the sweep folder {Path(marker).parent}"] if not seen else []) + missing
    return f"{socket.gethostname()} does not see {', '.join(what)}"


def check_shared_storage(ray, plan: Plan) -> None:
    """Every alive node must see this sweep folder (a marker written here) and the data files."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    cfg = plan.base_config()
    paths = [p for p in (cfg.task.path, cfg.task.test_path, cfg.general and cfg.general.path,
                         cfg.general and cfg.general.heldout_path, cfg.model.name) if p and Path(p).exists()]
    token = uuid.uuid4().hex
    marker = plan.folder / f".storage-check-{token}"
    plan.folder.mkdir(parents=True, exist_ok=True)
    marker.write_text(token, encoding="utf-8")
    probe = ray.remote(num_cpus=0)(_probe)
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        answers = ray.get([probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
                           .remote(str(marker), token, paths) for n in nodes], timeout=300)
    finally:
        marker.unlink(missing_ok=True)
    bad = [a for a in answers if a]
    if bad:
        raise TellkitError(f"every Ray node must see output.dir and the data at the same paths (shared storage such "
                           f"as NFS or Lustre; see docs/scaling.md): {'; '.join(bad)}")


def run_ray(plan: Plan, todo: list[str], address: str, cell_cpus: int, progress: Progress) -> dict[str, str]:
    ray = _ray()
    try:
        if address == "local":  # a fresh one-machine cluster, e.g. for a try-out or a test
            ray.init(address="local", num_cpus=cores(), include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    except ConnectionError as e:
        raise TellkitError(f"--ray {address}: no Ray cluster found ({e}); start one first (docs/scaling.md) "
                           "or use --ray local") from None
    try:
        check_shared_storage(ray, plan)
        gpus = 1 if ray.cluster_resources().get("GPU", 0) else 0
        task = ray.remote(_cell_task)
        declared = {"num_cpus": cell_cpus, "num_gpus": gpus, "max_retries": MAX_RETRIES,
                    "retry_exceptions": False}  # a user error would only fail again
        refs = {}
        for name in todo:
            dep = plan.cell(name).depends_on
            ram = {} if gpus else {"memory": int(plan.memory_gib.get(name, 0.0) * GIB)}
            refs[name] = task.options(**declared, **ram).remote(str(plan.folder), name, cell_cpus,
                                                                *([refs[dep]] if dep in refs else []))
        return _collect(ray, plan, refs, progress)
    finally:
        ray.shutdown()


def _collect(ray, plan: Plan, refs: dict, progress: Progress) -> dict[str, str]:
    pending = {ref: name for name, ref in refs.items()}
    failures: dict[str, str] = {}
    seen: dict[str, int] = {name: len(events(plan, plan.cell(name))) for name in refs}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=2.0)
        # Ray does not tell the driver when a task starts; the cells' own logs do
        progress.set_running(n for n in pending.values()
                             if (ev := events(plan, plan.cell(n))[seen[n]:]) and ev[-1]["event"] == "start")
        for ref in ready:
            name = pending.pop(ref)
            try:
                ray.get(ref)
            except ray.exceptions.RayTaskError as e:
                dep = plan.cell(name).depends_on
                failures[name] = f"its TELL cell {dep} failed" if dep in failures else str(e.cause or e).splitlines()[0]
                progress.fail(name, failures[name])
            except ray.exceptions.RayError as e:  # worker or node lost more than max_retries times
                failures[name] = f"{type(e).__name__} after {MAX_RETRIES} retries"
                progress.fail(name, failures[name])
            else:
                progress.done(name)
    return failures
