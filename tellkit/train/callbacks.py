"""Trainer callbacks: a progress bar with tokens/s, ETA and a "machine busy" note, the loss log, a NaN guard."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm
from transformers import TrainerCallback

from ..io import write_json_atomic


class BusyWatch:
    """Notices when training runs far slower than it did at its own start.

    Why: on a CPU, another process taking a core slows a training step several-fold (tellkit/threads.py),
    and a user watching a slow bar cannot tell a busy machine from a slow setting. The start rate is the
    tokens/s of the `early` steps after the first (warm-up: allocator, first-touch pages); a note is due
    while the last `window` steps run below `ratio` x that rate. Rates are tokens per second of step time
    (on_step_begin to on_step_end), so saves, dev evaluation and variable step sizes do not trip it."""

    def __init__(self, early: int = 3, window: int = 3, ratio: float = 0.5, warmup: int = 1):
        self.early, self.window, self.ratio, self.warmup = early, window, ratio, warmup
        self.steps: list[tuple[float, float]] = []  # (tokens, seconds) per step seen
        self.start_rate: float | None = None
        self.slow_steps = 0  # steps that ended with a note due
        self.slowest: float | None = None

    def update(self, tokens: float, seconds: float) -> str | None:
        """Record one step; returns the note to show ("machine busy: N tok/s vs M at start") or None."""
        self.steps.append((float(tokens), max(float(seconds), 1e-9)))
        if self.start_rate is None:
            first = self.steps[self.warmup:self.warmup + self.early]
            if len(first) == self.early:
                self.start_rate = sum(t for t, _ in first) / sum(s for _, s in first)
            return None
        recent = self.steps[-self.window:]
        if len(self.steps) < self.warmup + self.early + self.window:
            return None  # the window still overlaps the start
        rate = sum(t for t, _ in recent) / sum(s for _, s in recent)
        if rate >= self.ratio * self.start_rate:
            return None
        self.slow_steps += 1
        self.slowest = rate if self.slowest is None else min(self.slowest, rate)
        return f"machine busy: {rate:.0f} tok/s vs {self.start_rate:.0f} at start"

    def summary(self) -> dict | None:
        """For the run record: None when no step was slow."""
        if not self.slow_steps:
            return None
        return {"slow_steps": self.slow_steps, "slowest_tok_s": round(self.slowest, 1),
                "start_tok_s": round(self.start_rate, 1)}


class Progress(TrainerCallback):
    """tqdm over optimizer steps; tokens/s counts real (non-pad) tokens of the global batch."""

    def __init__(self, tokens_per_step: np.ndarray):
        self.cum = np.concatenate([[0], np.cumsum(tokens_per_step)])
        self.bar = None
        self.busy = BusyWatch()
        self.note: str | None = None
        self._step_t0: float | None = None

    def on_train_begin(self, args, state, control, **kw):
        if state.is_world_process_zero:
            self.start_step, self.t0 = state.global_step, time.perf_counter()
            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="train", unit="step")

    def on_step_begin(self, args, state, control, **kw):
        self._step_t0 = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        if self._step_t0 is not None:
            step = min(state.global_step, len(self.cum) - 1)
            self.note = self.busy.update(self.cum[step] - self.cum[step - 1], time.perf_counter() - self._step_t0)
            self._step_t0 = None
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)
            self.bar.set_description(f"train ({self.note})" if self.note else "train", refresh=False)
            self._show(state)

    def on_log(self, args, state, control, logs=None, **kw):
        # The Trainer logs a step's loss after on_step_end: show it now, not one step late.
        if self.bar is not None and logs and "loss" in logs:
            self._show(state)

    def _show(self, state) -> None:
        toks = self.cum[min(state.global_step, len(self.cum) - 1)] - self.cum[min(self.start_step, len(self.cum) - 1)]
        last = next((r for r in reversed(state.log_history) if "loss" in r), {})
        shown = {"tok_s": f"{toks / max(time.perf_counter() - self.t0, 1e-9):.0f}",
                 "loss": f"{last['loss']:.3f}" if "loss" in last else "-"}
        if "task_loss" in last:  # the loss on the task examples alone: what TELL is meant to teach
            shown["task"] = f"{last['task_loss']:.3f}"
        self.bar.set_postfix(shown)

    def on_train_end(self, args, state, control, **kw):
        if self.bar is not None:
            self.bar.close()


class LossLog(TrainerCallback):
    """Writes loss_log.json after every log; stops training on a non-finite loss or gradient norm.

    The guard runs before any checkpoint of the bad step: a save step always
    logs first (on_step_end), and a non-finite log cancels that step's save, so
    the newest checkpoint is the last good one. The gradient norm is checked
    too because the HF Trainer's default `logging_nan_inf_filter` replaces a
    NaN step loss with the running average (0.0 at the start of a logging
    window), which would hide the failure behind a finite number.
    """

    def __init__(self, path: Path, tokens_per_step: np.ndarray):
        self.path, self.cum = path, np.cumsum(tokens_per_step)
        self.records: list[dict] = []
        self.bad_step: int | None = None
        self.bad_reason: str | None = None

    def on_step_end(self, args, state, control, **kw):
        if control.should_save:  # log (and so check) this step before the Trainer saves it
            control.should_log = True

    def on_log(self, args, state, control, logs=None, **kw):
        dev = {f"dev_{k[5:]}": float(v) for k, v in (logs or {}).items()  # dev losses, a selection score
               if k.startswith(("eval_task_", "eval_general_")) and isinstance(v, (int, float)) and
               not k.endswith(("_runtime", "_per_second"))}
        if dev and self.records and self.records[-1]["step"] == state.global_step:  # a save step logs first
            self.records[-1] |= dev
            if state.is_world_process_zero:
                write_json_atomic(self.path, self.records)
        if not logs or "loss" not in logs:
            return
        step = state.global_step
        loss = float(logs["loss"])
        grad_norm = logs.get("grad_norm")
        bad = [f"{k}={v}" for k, v in (("loss", loss), ("grad_norm", grad_norm))
               if v is not None and not math.isfinite(float(v))]
        if bad:
            self.bad_step, self.bad_reason = step, ", ".join(bad)
            control.should_training_stop = True
            control.should_save = False  # keep the last good checkpoint as the newest one
            return
        record = {"step": step, "loss": loss, "lr": logs.get("learning_rate"), "grad_norm": grad_norm,
                  "epoch": logs.get("epoch"), "tokens": int(self.cum[min(step, len(self.cum)) - 1]) if step else 0}
        # per supervised token since the previous record; a source with no tokens in the window has no loss
        record |= {k: logs[k] for k in ("task_loss", "general_loss", "task_tokens", "general_tokens") if k in logs}
        self.records.append(record)
        if state.is_world_process_zero:
            write_json_atomic(self.path, self.records)
