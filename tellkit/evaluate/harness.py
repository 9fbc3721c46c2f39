"""General ability out of distribution: lm-evaluation-harness, in-process, on the evaluated model.

`general_ood(cfg, model, tok)` wraps the already loaded (and merged) model in lm-eval's `HFLM`, loads
`eval.general_tasks` through a `TaskManager` whose include path holds tellkit's default suite
(tellkit/evaluate/general_suite: WordNet definitions, Python docstrings; offline, shipped with tellkit)
and the folders of any task YAML the user names, and runs `simple_evaluate` with per-document
output (`log_samples`). Each task's metrics, their direction and their aggregation are lm-eval's own
task definition; metrics/general_ood.py turns the per-document rows into tellkit's result shape.

Choices where lm-eval leaves one (documented in docs/general-ability.md):
  - zero-shot unless a task's YAML sets num_fewshot, and no chat template: the prompts are scored as
    plain text, the way lm-eval's published numbers are, and the same for every method;
  - lm-eval's global reseeding is switched off (it would reseed random/numpy/torch inside a sweep
    that trains other cells afterwards); few-shot sampling keeps lm-eval's default seed;
  - `eval.general_limit`: the first N documents of each task (the default suite's rows are shuffled
    at build time, so that is a random sample); no limit for the full suite.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from pathlib import Path

from ..config import Config
from ..errors import ConfigError, TellkitError
from ..metrics import general_ood as result_of
from ..train.precision import score_bf16
from .general_suite import DEFAULT_TASKS, SUITE_DIR

FEWSHOT_SEED = 1234  # lm-eval's own default, so few-shot tasks sample the examples published numbers use


def is_path(spec: str) -> bool:
    return spec.endswith((".yaml", ".yml"))


def _needs_defaults(specs: list[str]) -> bool:
    """Whether lm-eval's own task index (~15k YAML files, seconds to scan) is needed for these names."""
    return any(not is_path(s) and s not in DEFAULT_TASKS for s in specs)


def task_manager(specs: list[str]):
    from lm_eval.tasks import TaskManager

    folders = [SUITE_DIR, *dict.fromkeys(Path(s).parent for s in specs if is_path(s))]
    return TaskManager(include_path=[str(f) for f in folders], include_defaults=_needs_defaults(specs))


def top_names(specs: list[str]) -> list[str]:
    """The task or group name each spec stands for (a YAML file's `task:` or `group:`)."""
    from lm_eval.tasks._index import TaskIndex

    names = []
    for spec in specs:
        entry = TaskIndex.entry_from_path(Path(spec)) if is_path(spec) else None
        names.append(entry.name if entry else spec)
    return names


def check_tasks(cfg: Config) -> None:
    """Before anything trains: every eval.general_tasks entry is a task, group or tag lm-eval knows, or a
    readable task YAML; eval.general_score, when set, names one of them. Loads no data; checked once per
    process for the same names (a compare validates every method's config)."""
    _check(tuple(cfg.eval.general_tasks), cfg.eval.general_score)


@functools.lru_cache(maxsize=8)
def _check(specs: tuple[str, ...], chosen: str | None) -> None:
    specs = list(specs)
    if not specs:
        raise ConfigError("eval.metrics has general_ood but eval.general_tasks is empty; name lm-eval tasks "
                          f"(default: {', '.join(DEFAULT_TASKS)}) or drop general_ood from eval.metrics")
    for spec in specs:
        if is_path(spec) and not Path(spec).is_file():
            raise ConfigError(f"eval.general_tasks: no task YAML at {spec}")
    known = set(task_manager(specs).all_tasks)
    for spec, name in zip(specs, top_names(specs)):
        if name is None or (not is_path(spec) and spec not in known):
            import difflib

            hint = difflib.get_close_matches(spec, sorted(known), n=1)
            raise ConfigError(f"eval.general_tasks: {spec!r} is not an lm-eval task, group or tag, nor a task YAML "
                              f"file{f'; did you mean {hint[0]!r}?' if hint else ''} (tellkit's suite: "
                              f"{', '.join(DEFAULT_TASKS)}; `lm-eval ls tasks` lists lm-eval's)")
    if chosen and chosen.rpartition("/")[0] not in top_names(specs):
        raise ConfigError(f"eval.general_score {chosen!r} must be TASK/METRIC with TASK one of "
                          f"{top_names(specs)} (e.g. {top_names(specs)[0]}/acc)")


@contextlib.contextmanager
def _quiet():
    """lm-eval logs every model it wraps and every custom data set at WARNING; tellkit's users need none of it."""
    logger = logging.getLogger("lm_eval")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def general_ood(cfg: Config, model, tok) -> dict:
    """The `general_ood` result of `model` (adapter merged) on eval.general_tasks."""
    import lm_eval
    from lm_eval import evaluator
    from lm_eval.models.huggingface import HFLM

    import torch

    specs = list(cfg.eval.general_tasks)
    bf16 = score_bf16(cfg.eval.bf16, cfg.train.bf16)
    start = time.perf_counter()
    model.eval()
    with _quiet():
        # lm-eval's own autocast wraps every forward pass (and, left at None, would switch off any outer one)
        lm = HFLM(pretrained=model, tokenizer=tok, batch_size="auto" if model.device.type == "cuda"
                  else cfg.eval.batch_size, max_batch_size=64, mixed_precision_dtype=torch.bfloat16 if bf16 else None)
        try:
            output = evaluator.simple_evaluate(
                model=lm, tasks=specs, task_manager=task_manager(specs), limit=cfg.eval.general_limit,
                log_samples=True, bootstrap_iters=0, random_seed=None, numpy_random_seed=None,
                torch_random_seed=None, fewshot_random_seed=FEWSHOT_SEED)
        except (KeyError, ValueError, FileNotFoundError, ConnectionError, OSError) as e:
            raise TellkitError(f"lm-eval could not run eval.general_tasks {specs}: {str(e).splitlines()[0]} "
                               "(a task from the Hugging Face hub needs its data set cached: run it once "
                               "with network access)") from e
    result = result_of.from_lm_eval(output, top_names(specs), seed=cfg.train.seed, chosen=cfg.eval.general_score)
    result.update(seconds=round(time.perf_counter() - start, 1), suite=specs, limit=cfg.eval.general_limit, bf16=bf16,
                  lm_eval=lm_eval.__version__)
    return result
