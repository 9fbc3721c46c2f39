"""The training progress bar shows the loss of the step just finished, not the one before."""

from __future__ import annotations

import numpy as np
from transformers import TrainerControl, TrainerState

from tellkit.train.callbacks import Progress


def test_progress_shows_the_loss_logged_after_the_step():
    progress = Progress(np.array([100, 100, 100]))
    state, control = TrainerState(), TrainerControl()
    state.max_steps, state.is_world_process_zero = 3, True
    progress.on_train_begin(None, state, control)
    shown = []
    progress.bar.set_postfix = lambda d: shown.append(dict(d))
    for step, loss in ((1, 2.5), (2, 1.25)):
        state.global_step = step
        progress.on_step_end(None, state, control)  # the Trainer calls this before it logs the step
        state.log_history.append({"step": step, "loss": loss, "task_loss": loss * 2})
        progress.on_log(None, state, control, logs={"loss": loss})
    progress.on_train_end(None, state, control)
    assert shown[0]["loss"] == "-"  # nothing logged yet when step 1 ends
    assert [s["loss"] for s in shown[1::2]] == ["2.500", "1.250"]  # shown as soon as logged
    assert shown[-1]["task"] == "2.500" and int(shown[-1]["tok_s"]) > 0
