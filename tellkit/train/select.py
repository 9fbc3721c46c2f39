"""Checkpoint selection by a task metric on the dev split (`eval.select_by: metric/score`).

Dev loss is a poor proxy for what `tellkit eval` measures once a small task set is nearly learned:
the loss can keep falling after the format is right, or rise while the answers stay right. So at
every save the trainer can instead greedy-generate on the held-out dev prompts and score them with
the configured metric, the same way for every method:

* the prompts are the dev examples' messages without the final assistant turn, rendered with
  `encode_prompt` like the test prompts of `tellkit eval`; the task dataset's messages already
  carry the anchor for anchored methods (tellkit/data/cache.py), so TELL and sft+anchor are
  asked with their anchor and SFT without, as at evaluation;
* the golds are the final assistant turns; the score is the metric registry's, with the eval
  options (label field, JSON schema, ...) of the config;
* generation is tellkit's batched decoder (generation/generate.py) on the live, unmerged PeftModel,
  with `select_max_new_tokens` new tokens, so a save costs one short generation over the dev split.

Generation must leave training as it found it: the train/eval mode, the fused head the trainer
swapped in (loss.HiddenHead returns hidden states, not logits, so the real head goes back for the
generation) and the global RNG state (generate seeds it), so a run with this selection trains the
same steps as one without.
"""

from __future__ import annotations

import json
import time

import torch

from .. import metrics as metric_registry
from ..config import Config
from ..data.tokenize import encode_prompt
from ..errors import ConfigError, TellkitError
from ..generation.generate import generate
from ..mix import Mixture
from .loss import HiddenHead
from .precision import eval_bf16


class DevSelector:
    """Scores a model on the dev prompts; `key` names the score in the trainer's metrics
    (`eval_task_<key>`), `greater_is_better` says which way is best."""

    def __init__(self, cfg: Config, tokenizer, prompts: list[str], golds: list[str]):
        self.metric, _, self.score_name = cfg.eval.select_by.partition("/")
        self.tokenizer, self.prompts, self.golds = tokenizer, prompts, golds
        name = self.metric if self.score_name == self.metric else f"{self.metric}_{self.score_name}"
        self.key = name.replace("+", "p")  # chrf++ -> chrfpp: a metrics key, a loss-log column
        self.greater_is_better = metric_registry.METRICS[self.metric].higher_is_better
        self.max_new_tokens = cfg.eval.select_max_new_tokens
        self.generation = {"batch_size": cfg.eval.batch_size, "max_batch": cfg.eval.max_batch,
                           "stop_at_json": cfg.eval.stop_at_json, "seed": cfg.train.seed,
                           "bf16": eval_bf16(cfg.eval.bf16, cfg.train.bf16)}
        self.options, self.seed = metric_registry.options_from(cfg.eval), cfg.train.seed
        self.seconds = 0.0  # generating and scoring, all calls together: what selecting this way cost
        self._check_golds()

    @classmethod
    def from_config(cls, cfg: Config, mixture: Mixture, tokenizer) -> "DevSelector | None":
        """None when the checkpoint is picked by dev loss, or when there is no dev split."""
        if cfg.eval.select_by == "loss" or not len(mixture.dev_rows):
            return None
        rows = mixture.task.select([int(i) for i in mixture.dev_rows])["messages"]
        conversations = [json.loads(m) for m in rows]
        return cls(cfg, tokenizer, [encode_prompt(tokenizer, c) for c in conversations],
                   [c[-1]["content"] for c in conversations])

    def _check_golds(self) -> None:
        # Scoring the golds against themselves before training: a gold the metric cannot read, or a
        # score it does not report for this data, fails now rather than at the first save.
        try:
            scores = self._scores(self.golds)
        except TellkitError as e:  # e.g. a gold that is no JSON object: say which setting needs it
            raise type(e)(f"eval.select_by={self.metric}/{self.score_name} on the dev split: {e}") from None
        if self.score_name not in scores:
            raise ConfigError(f"eval.select_by={self.metric}/{self.score_name}: the {self.metric} metric reports "
                              f"no {self.score_name!r} score for this task's dev examples; it reports "
                              + ", ".join(f"{self.metric}/{s}" for s in scores))

    def _scores(self, outputs: list[str]) -> dict:
        result = metric_registry.compute([self.metric], outputs, self.golds, self.options, seed=self.seed)
        return result[self.metric]["scores"]

    def outputs(self, model) -> list[str]:
        """Greedy outputs for the dev prompts from `model` as it is now (a training model is fine)."""
        start = time.perf_counter()
        was_training = model.training
        fused = model.get_output_embeddings()
        if isinstance(fused, HiddenHead):  # the trainer's fused loss: logits need the real head back
            model.set_output_embeddings(fused.head[0])
        devices = [model.device] if model.device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices):  # generate seeds the RNG; training's must go on as it was
                return generate(model, self.tokenizer, self.prompts, max_new_tokens=self.max_new_tokens,
                                progress=False, **self.generation)
        finally:
            if isinstance(fused, HiddenHead):
                model.set_output_embeddings(fused)
            model.train(was_training)
            self.seconds += time.perf_counter() - start

    def score(self, model) -> float:
        """The selection score of `model` on the dev split."""
        outputs = self.outputs(model)
        start = time.perf_counter()
        value = float(self._scores(outputs)[self.score_name]["value"])
        self.seconds += time.perf_counter() - start
        return value
