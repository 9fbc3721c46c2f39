"""The step plan: what training will do, computed from the config and the mixture before any weights load.

This module is the single source of truth for the step budget; the trainer takes
its `max_steps`, `warmup_steps`, micro-batches and tokens per step from here, so
what `tellkit validate` prints is what training does.

Semantics (the same with packing on or off, so the step count does not depend on it):
- `train.batch_size` counts *examples* per micro-batch per device; a micro-batch is
  `batch_size` consecutive examples in mixture order (the mixture already is the seeded shuffle);
- examples per optimizer step = batch_size x grad_accum x world_size;
- optimizer steps = train.max_steps, or ceil(ceil(examples / examples_per_step) x epochs);
  each epoch ends with a short step, as the HF Trainer does;
- under DDP, accelerate's `even_batches` completes the last global micro-batches with examples
  from the start of the epoch (so every rank steps the same number of times): `micro_batches`
  returns that wrapped order;
- packing on: a micro-batch's examples are concatenated into one padding-free row, so it costs
  the sum of their tokens; packing off: they are padded to the longest of them, and the padded
  slots count (they take memory and compute).

    plan = plan_training(cfg, mixture)          # world_size from $WORLD_SIZE
    groups = micro_batches(len(mixture.order), cfg.train.batch_size, plan.world_size)
    TrainingArguments(max_steps=plan.optimizer_steps, warmup_steps=plan.warmup_steps, ...)
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from ..config import Config
from ..mix import Mixture
from ..mix.mixture import TASK, _column

MIN_STEPS = 30  # fewer optimizer steps than this rarely moves a LoRA adapter far enough (issue 12)
SMALL_TASK = 1000  # unique task examples at or under which one pass is too few
MIN_TASK_PASSES = 2.0


@dataclass
class TrainPlan:
    optimizer_steps: int
    steps_per_epoch: int
    examples: int  # training examples in the mixture (one epoch)
    examples_per_step: int  # nominal: batch_size x grad_accum x world_size
    batch_size: int
    grad_accum: int
    world_size: int
    packing: bool
    epochs: float  # passes over the mixture
    task_examples: int  # unique task examples in the mixture
    task_epochs: float  # task examples trained on / unique task examples
    tokens_per_step: np.ndarray  # real (non-pad) tokens of each optimizer step, len == optimizer_steps
    micro_tokens_max: int  # token slots of the largest micro-batch on one device (padded slots included)
    micro_tokens_mean: float
    micro_shape_max: tuple[int, int]  # (rows, row length) of that micro-batch as the model sees it
    longest_example: int  # tokens of the longest example (attention is per example)
    lr: float
    scheduler: str
    warmup_steps: int
    mean_lr: float  # mean learning rate over the optimizer steps under the scheduler
    warnings: list[str] = field(default_factory=list)

    @property
    def train_tokens(self) -> int:
        return int(self.tokens_per_step.sum())

    def summary(self) -> dict:
        """JSON-able (validate's summary, run.json); the per-step array reduced to its mean/min/max."""
        tps = self.tokens_per_step
        return {
            "optimizer_steps": self.optimizer_steps, "steps_per_epoch": self.steps_per_epoch,
            "examples": self.examples, "examples_per_step": self.examples_per_step,
            "batch_size": self.batch_size, "grad_accum": self.grad_accum, "world_size": self.world_size,
            "packing": self.packing, "epochs": round(self.epochs, 3),
            "task_examples": self.task_examples, "task_epochs": round(self.task_epochs, 3),
            "train_tokens": self.train_tokens,
            "tokens_per_step": {"mean": round(float(tps.mean()), 1) if len(tps) else 0.0,
                                "min": int(tps.min()) if len(tps) else 0, "max": int(tps.max()) if len(tps) else 0},
            "micro_batch_tokens": {"max": self.micro_tokens_max, "mean": round(self.micro_tokens_mean, 1),
                                   "max_shape": list(self.micro_shape_max)},
            "longest_example": self.longest_example,
            "lr": self.lr, "scheduler": self.scheduler, "warmup_steps": self.warmup_steps,
            "mean_lr": float(f"{self.mean_lr:.4g}"), "warnings": list(self.warnings),
        }


def example_lengths(mixture: Mixture) -> np.ndarray:
    """Tokens of each training example, in mixture (training) order."""
    cols = [_column(mixture.task, "n_tokens"), _column(mixture.general, "n_tokens")]
    offset = np.array([0, len(cols[0])], dtype=np.int64)
    return np.concatenate(cols)[offset[mixture.order[:, 0]] + mixture.order[:, 1]]


def epoch_positions(n_examples: int, batch_size: int, world_size: int = 1) -> np.ndarray:
    """Mixture positions in the order one epoch trains them: all of them, and under DDP the wrap-around
    that completes the last global micro-batch (accelerate's even_batches)."""
    if world_size == 1:
        return np.arange(n_examples, dtype=np.int64)
    seen = math.ceil(n_examples / (batch_size * world_size)) * batch_size * world_size
    return np.arange(seen, dtype=np.int64) % max(n_examples, 1)


def micro_batches(n_examples: int, batch_size: int, world_size: int = 1) -> list[list[int]]:
    """One epoch's micro-batches (lists of mixture positions), in order. Global micro-batch k runs on
    rank k % world_size; optimizer step j takes micro-batches [j, j+1) x grad_accum x world_size.
    Used as the training items (one micro-batch per item), the trainer steps exactly as planned."""
    pos = epoch_positions(n_examples, batch_size, world_size)
    return [pos[i:i + batch_size].tolist() for i in range(0, len(pos), batch_size)]


def plan_training(cfg: Config, mixture: Mixture, world_size: int | None = None) -> TrainPlan:
    """The step plan of `cfg.train` over `mixture` (world_size: processes; default $WORLD_SIZE or 1)."""
    t = cfg.train
    world = world_size or int(os.environ.get("WORLD_SIZE", "1"))
    lengths = example_lengths(mixture)
    n = len(lengths)
    if n == 0:
        from ..errors import TellkitError

        raise TellkitError("the mixture is empty: nothing to train on")
    is_task = (mixture.order[:, 0] == TASK).astype(np.int64)
    per_step = t.batch_size * t.grad_accum * world
    pos = epoch_positions(n, t.batch_size, world)
    step_starts = np.arange(0, len(pos), per_step)
    steps_per_epoch = len(step_starts)
    steps = t.max_steps or math.ceil(steps_per_epoch * t.epochs)
    tokens_per_step = _tile(np.add.reduceat(lengths[pos], step_starts), steps)
    task_seen = int(_tile(np.add.reduceat(is_task[pos], step_starts), steps).sum())
    unique_task = int(len(np.unique(mixture.order[is_task == 1, 1])))

    slots, shape = micro_batch_slots(lengths[pos], t.batch_size, t.packing)
    warmup = warmup_steps(t.warmup_ratio, steps)
    plan = TrainPlan(
        optimizer_steps=steps, steps_per_epoch=steps_per_epoch, examples=n, examples_per_step=per_step,
        batch_size=t.batch_size, grad_accum=t.grad_accum, world_size=world, packing=t.packing,
        epochs=steps / steps_per_epoch, task_examples=unique_task,
        task_epochs=task_seen / unique_task if unique_task else 0.0, tokens_per_step=tokens_per_step,
        micro_tokens_max=int(slots.max()), micro_tokens_mean=float(slots.mean()), micro_shape_max=shape,
        longest_example=int(lengths.max()), lr=t.lr, scheduler=t.scheduler, warmup_steps=warmup,
        mean_lr=mean_lr(t.scheduler, t.lr, warmup, steps))
    plan.warnings = _warnings(plan, cfg)
    return plan


def micro_batch_slots(lengths: np.ndarray, batch_size: int, packing: bool) -> tuple[np.ndarray, tuple[int, int]]:
    """Token slots of each micro-batch of `lengths` (in training order), and the (rows, row length)
    shape of the largest: packed, one row of the examples' summed tokens; padded, batch x longest."""
    starts = np.arange(0, len(lengths), batch_size)
    total = np.add.reduceat(lengths, starts)
    if packing:
        i = int(np.argmax(total))
        return total, (1, int(total[i]))
    rows = np.diff(np.append(starts, len(lengths)))
    width = np.maximum.reduceat(lengths, starts)
    slots = rows * width
    i = int(np.argmax(slots))
    return slots, (int(rows[i]), int(width[i]))


def warmup_steps(ratio: float, steps: int) -> int:
    """Warm-up steps for train.warmup_ratio: rounded up, as TrainingArguments does for a ratio."""
    return math.ceil(ratio * steps)


def mean_lr(scheduler: str, lr: float, warmup: int, steps: int) -> float:
    """Mean learning rate over the optimizer steps, from the very scheduler the HF Trainer builds
    (transformers.get_scheduler on a dummy optimizer): step k trains at lr x lambda(k)."""
    import torch
    from transformers import get_scheduler

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = get_scheduler(scheduler, opt, num_warmup_steps=warmup, num_training_steps=steps)
    factor = sched.lr_lambdas[0]
    return lr * float(np.mean([factor(k) for k in range(steps)]))


def plan_lines(plan: dict) -> list[str]:
    """Two human-readable lines, then any warnings, from `TrainPlan.summary()` (the start of training,
    `tellkit validate`)."""
    p, mb = plan, plan["micro_batch_tokens"]
    devices = f"{p['world_size']} device{'s' if p['world_size'] > 1 else ''}"
    lines = [
        f"plan: {p['optimizer_steps']} optimizer steps x {p['examples_per_step']} examples ({p['batch_size']} "
        f"per micro-batch x {p['grad_accum']} accumulated x {devices}); {p['epochs']:g} epochs over "
        f"{p['examples']} examples = {p['task_epochs']:g} passes over {p['task_examples']} task examples",
        f"      ~{p['tokens_per_step']['mean']:,.0f} tokens/step ({p['train_tokens']:,} in all); micro-batches "
        f"up to {mb['max']:,} tokens ({'packed' if p['packing'] else 'padded'}, mean {mb['mean']:,.0f}); "
        f"lr {p['lr']:g} {p['scheduler']}, {p['warmup_steps']} warm-up steps, mean lr {p['mean_lr']:.3g}",
    ]
    return lines + [f"warning: {w}" for w in p["warnings"]]


def report_lines(plan: dict) -> list[str]:
    """Markdown lines for a run report, from `TrainPlan.summary()` as stored in run.json."""
    tps, mb = plan["tokens_per_step"], plan["micro_batch_tokens"]
    lines = [
        "| optimizer steps | examples / step | tokens / step (mean) | epochs (mixture) | passes over task data "
        "| micro-batch tokens max / mean | warm-up | mean lr |",
        "|---|---|---|---|---|---|---|---|",
        f"| {plan['optimizer_steps']} | {plan['examples_per_step']} ({plan['batch_size']} x {plan['grad_accum']} "
        f"x {plan['world_size']}) | {tps['mean']:,.0f} | {plan['epochs']:g} | {plan['task_epochs']:g} "
        f"({plan['task_examples']} examples) | {mb['max']:,} / {mb['mean']:,.0f} "
        f"({'packed' if plan['packing'] else 'padded'}) | {plan['warmup_steps']} | {plan['mean_lr']:.3g} "
        f"({plan['scheduler']}, peak {plan['lr']:g}) |",
    ]
    return lines + [f"> **Warning:** {w}" for w in plan.get("warnings", [])]


def _warnings(plan: TrainPlan, cfg: Config) -> list[str]:
    """Say what to change when the plan is too small to teach the task (issue 12)."""
    t, out = cfg.train, []
    if plan.optimizer_steps < MIN_STEPS:
        if t.max_steps:
            out.append(f"only {plan.optimizer_steps} optimizer steps (train.max_steps={t.max_steps}); "
                       f"a LoRA adapter usually needs {MIN_STEPS} or more: raise train.max_steps")
        else:
            fix = [f"train.epochs={_round_up(t.epochs * MIN_STEPS / plan.optimizer_steps)}"]
            smaller = _smaller_step(plan.examples, t.batch_size, t.grad_accum, plan.world_size, t.epochs)
            if smaller:
                fix.append(smaller)
            out.append(f"only {plan.optimizer_steps} optimizer steps ({plan.examples} examples / "
                       f"{plan.examples_per_step} per step x {t.epochs:g} epochs); a LoRA adapter usually needs "
                       f"{MIN_STEPS} or more: set " + " or ".join(fix))
    if 0 < plan.task_examples <= SMALL_TASK and plan.task_epochs < MIN_TASK_PASSES:
        if plan.task_epochs > 0:
            scale = MIN_TASK_PASSES / plan.task_epochs
            fix = (f"train.max_steps={math.ceil(plan.optimizer_steps * scale)}" if t.max_steps
                   else f"train.epochs={_round_up(t.epochs * scale)}")
        else:  # the steps end before any task example: passes over the whole mixture are what it takes
            fix = f"train.max_steps={math.ceil(MIN_TASK_PASSES * plan.steps_per_epoch)}"
        out.append(f"the {plan.task_examples} task examples are trained on {plan.task_epochs:.2f} times; a small "
                   f"task set needs {MIN_TASK_PASSES:g}+ passes: set {fix}")
    return out


def _smaller_step(n: int, batch_size: int, grad_accum: int, world: int, epochs: float) -> str | None:
    """The override with the most examples per step that still gives MIN_STEPS steps: fewer
    accumulation steps first (the micro-batch stays as fast), then a smaller batch."""
    def steps(bs: int, ga: int) -> int:
        return math.ceil(math.ceil(n / (bs * ga * world)) * epochs)

    for ga in range(grad_accum - 1, 0, -1):
        if steps(batch_size, ga) >= MIN_STEPS:
            return f"train.grad_accum={ga}"
    for bs in range(batch_size - 1, 0, -1):
        if steps(bs, 1) >= MIN_STEPS:
            return f"train.batch_size={bs}" + (" train.grad_accum=1" if grad_accum > 1 else "")
    return None


def _round_up(x: float) -> str:
    return f"{math.ceil(x - 1e-9):d}" if x > 1 else f"{math.ceil(x * 10 - 1e-9) / 10:g}"


def _tile(per_epoch: np.ndarray, steps: int) -> np.ndarray:
    """Per-step values over `steps` steps; every epoch repeats the same order."""
    return np.tile(per_epoch, math.ceil(steps / len(per_epoch)))[:steps].astype(np.int64)
