"""LoRA training of a mixture with the HF Trainer.

The optimizer step is the library's; what is ours: the step plan (tellkit/train/plan.py: micro-
batches of `batch_size` examples in mixture order, a SequentialSampler because the mixture already
*is* the seeded shuffle), padding-free packed rows with per-example attention (attention.py), the
fused head + cross-entropy on supervised positions only, with task and general losses from the same
pass (loss.py), throughput accounting, the loss log and the NaN stop.
"""

from __future__ import annotations

import contextlib
import json
import resource
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from peft import LoraConfig as PeftLoraConfig
from peft import get_peft_model
from torch.utils.data import SequentialSampler
from transformers import PrinterCallback, Trainer, TrainingArguments, set_seed

from .. import threads
from ..config import Config
from ..data.tokenize import IGNORE
from ..errors import TellkitError
from ..io import replace_dir
from ..mix import Mixture
from ..models.load import load_model_and_tokenizer
from ..runs.rundir import last_checkpoint
from ..track import tracking_args
from .attention import training_attention
from .batches import MicroBatches, collate_packed, collate_padded
from .callbacks import LossLog, Progress
from .lean import lean_activations, recompute
from .loss import fuse_head, linear_cross_entropy, unfuse_head
from .plan import TrainPlan, micro_batches, plan_training
from .precision import use_bf16
from .select import DevSelector


class MixtureTrainer(Trainer):
    """compute_loss: one forward, the fused loss over supervised positions, and per-source sums."""

    def __init__(self, *args, head_weight=None, selector: DevSelector | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.head_weight = head_weight  # set: the model returns hidden states (loss.HiddenHead)
        self.selector = selector  # set: checkpoints are picked by a generation metric on the dev split
        self.model_accepts_loss_kwargs = True  # count supervised tokens over the whole optimizer step
        self.source_sums = torch.zeros(4, dtype=torch.float64)  # task loss, task tokens, general loss, tokens

    def _get_train_sampler(self, train_dataset=None):
        return SequentialSampler(train_dataset if train_dataset is not None else self.train_dataset)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        targets, source = inputs.pop("shift_labels"), inputs.pop("token_source")
        del inputs["labels"]  # present for the Trainer's label checks; shift_labels is the target
        # recompute(): the MLP products and norm outputs are rebuilt in the backward pass instead of
        # kept (lean.py); checkpointing already recomputes whole layers, so it goes without.
        lean = model.training and torch.is_grad_enabled() and not self.args.activation_checkpointing
        with (recompute(self.args.device.type, autocast=self.args.bf16 or self.args.fp16) if lean
              else contextlib.nullcontext()):
            out = model(**inputs, use_cache=False)
        keep = targets != IGNORE
        hidden, targets = out.logits[keep], targets[keep]
        if self.head_weight is not None:
            per_token = linear_cross_entropy(hidden, self.head_weight, targets)
        else:
            per_token = torch.nn.functional.cross_entropy(hidden.float(), targets, reduction="none")
        if model.training:
            task = source[keep] == 1
            d = per_token.detach().double()
            self.source_sums += torch.stack([d[task].sum(), task.sum(), d[~task].sum(), (~task).sum()]).cpu()
        # Normalised by the supervised tokens of the whole optimizer step (all micro-batches, all ranks),
        # so accumulation and DDP give the loss of one big batch; DDP averages gradients over ranks.
        self.loss_is_scaled_for_ga = num_items_in_batch is not None
        loss = per_token.sum() / (num_items_in_batch if num_items_in_batch is not None else max(keep.sum(), 1))
        if num_items_in_batch is not None and self.args.average_tokens_across_devices:
            loss = loss * self.accelerator.num_processes
        return (loss, out) if return_outputs else loss

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict:
        metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
        if self.selector is not None and metric_key_prefix == "eval_task":
            score = {f"eval_task_{self.selector.key}": self.selector.score(self.model)}
            self.log(score)
            metrics |= score
        return metrics

    def log(self, logs: dict, start_time=None) -> None:
        if "loss" in logs:  # the task and general losses since the last log, per supervised token
            sums = self.accelerator.reduce(self.source_sums.to(self.args.device), reduction="sum").cpu()
            self.source_sums.zero_()
            for name, (total, n) in {"task": sums[:2], "general": sums[2:]}.items():
                if n > 0:
                    logs[f"{name}_loss"] = round(float(total / n), 6)
                logs[f"{name}_tokens"] = int(n)
        super().log(logs, start_time)


def train_mixture(cfg: Config, model_ref, mixture: Mixture, out: Path, plan: TrainPlan | None = None,
                  heldout=None) -> dict:
    """Train a LoRA adapter on the mixture; write out/adapter and out/loss_log.json; return stats.
    With a dev split, every save scores its loss (and the `heldout` general examples' loss, if given)
    and the best checkpoint by task dev loss becomes the adapter."""
    t = cfg.train
    plan = plan or plan_training(cfg, mixture)
    cpu = threads.for_training()  # the CPU threads and OpenMP wait policy this run computes with (threads.py)
    set_seed(t.seed)  # before LoRA init, so the adapter's initial weights follow the seed
    model, tokenizer = load_model_and_tokenizer(model_ref, dtype=cfg.model.dtype,
                                                trust_remote_code=cfg.model.trust_remote_code,
                                                allow_pickle=cfg.model.allow_pickle)
    model.config.use_cache = False
    model.set_attn_implementation(training_attention(t.packing, half=model.dtype != torch.float32 or use_bf16(t.bf16)))
    model = get_peft_model(model, PeftLoraConfig(
        r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
        target_modules=cfg.lora.target_modules, task_type="CAUSAL_LM"))
    lean_mlps = lean_activations(model)  # gated MLPs recompute their activation instead of keeping it
    head = fuse_head(model)

    rows = MicroBatches.of_mixture(mixture, micro_batches(plan.examples, t.batch_size, plan.world_size))
    collate = collate_packed if t.packing else collate_padded(tokenizer.pad_token_id)
    ckpt_dir = out / "checkpoints"
    selector = DevSelector.from_config(cfg, mixture, tokenizer)  # None: select by task dev loss
    args = TrainingArguments(
        output_dir=str(ckpt_dir), per_device_train_batch_size=1,  # one item = one planned micro-batch
        gradient_accumulation_steps=t.grad_accum, max_steps=plan.optimizer_steps, learning_rate=t.lr,
        lr_scheduler_type=t.scheduler, warmup_steps=plan.warmup_steps,
        weight_decay=t.weight_decay, max_grad_norm=t.max_grad_norm, logging_steps=t.logging_steps,
        save_strategy="steps", save_steps=t.save_steps, save_total_limit=t.save_total_limit,
        seed=t.seed, data_seed=t.seed, bf16=use_bf16(t.bf16), use_cpu=not torch.cuda.is_available(),
        activation_checkpointing=t.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False},  # LoRA: the frozen inputs need no grad hook
        **tracking_args(cfg, out), disable_tqdm=True, remove_unused_columns=False, dataloader_num_workers=0,
        ddp_find_unused_parameters=False,  # every LoRA weight gets a gradient; skips a graph walk per step
        logging_nan_inf_filter=False,  # a NaN/inf step loss must reach the NaN guard, not be averaged away
        prediction_loss_only=True,  # dev evaluation needs the loss, never the (hidden-state) outputs
        **_dev_selection(mixture, t.save_steps, selector),
    )
    loss_log = LossLog(out / "loss_log.json", plan.tokens_per_step)
    with args.main_process_first(local=False):  # ranks > 0 look for checkpoints after rank 0 claimed `out`
        resume = last_checkpoint(ckpt_dir)  # newest *complete* one: a kill can tear a checkpoint mid-write
    resume_step = int(resume.rsplit("-", 1)[-1]) if resume else 0
    if resume:
        loss_log.records = _previous_losses(out / "loss_log.json", resume_step)
    dev = MicroBatches.dev(mixture)
    if dev is not None:
        dev = {"task": dev} | ({"general": MicroBatches(heldout, [[i] for i in range(len(heldout))],
                                                         np.zeros(len(heldout), dtype=np.int8))}
                               if heldout is not None and len(heldout) else {})
    progress = Progress(plan.tokens_per_step)
    trainer = MixtureTrainer(model=model, args=args, train_dataset=rows, eval_dataset=dev,
                             data_collator=collate, callbacks=[progress, loss_log],
                             head_weight=head.weight if head is not None else None, selector=selector)
    trainer.remove_callback(PrinterCallback)  # our progress bar and loss log replace its raw dict prints
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume)
    wall = time.perf_counter() - start
    unfuse_head(model, head)
    if loss_log.bad_step is not None:
        last = last_checkpoint(ckpt_dir)
        raise TellkitError(f"training loss became NaN/inf at step {loss_log.bad_step} ({loss_log.bad_reason}); "
                           "lower train.lr "
                           f"(now {t.lr:g}); last good checkpoint: {last or 'none yet'}")

    _save_adapter(trainer, tokenizer, out / "adapter")
    done = trainer.state.global_step
    trained_tokens = int(plan.tokens_per_step[resume_step:done].sum())  # this session's
    return {
        "optimizer_steps": done, "micro_batches": len(rows), "examples_per_step": plan.examples_per_step,
        "epochs": t.epochs if not t.max_steps else None, "world_size": plan.world_size,
        "train_tokens": int(plan.tokens_per_step[:done].sum()), "packing": t.packing,
        "attention": model.config._attn_implementation, "fused_loss": head is not None, "lean_mlps": lean_mlps,
        "gradient_checkpointing": t.gradient_checkpointing,
        "wall_seconds": round(wall, 2), "tokens_per_second": round(trained_tokens / wall, 1) if wall else None,
        "resumed_from": resume, "bf16": args.bf16, **cpu,
        "machine_busy": getattr(getattr(progress, "busy", None), "summary", lambda: None)(),  # BusyWatch
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_cuda_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None,
        "final_loss": loss_log.records[-1]["loss"] if loss_log.records else None,
        "final_task_loss": loss_log.records[-1].get("task_loss") if loss_log.records else None,
        "dev_examples": int(len(mixture.dev_rows)),
        "best_checkpoint": trainer.state.best_model_checkpoint, "selected_by": args.metric_for_best_model,
        "best_dev_loss": trainer.state.best_metric if selector is None else None,
        "best_dev_score": trainer.state.best_metric if selector is not None else None,
        "selection_seconds": round(selector.seconds, 2) if selector is not None else None,
    }


def _dev_selection(mixture: Mixture, every: int, selector: DevSelector | None) -> dict:
    """With a dev split: dev losses at every save, and the best checkpoint (by task dev loss, or by
    the selector's generation metric) becomes the adapter."""
    if not len(mixture.dev_rows):
        return {}
    best = ({"metric_for_best_model": f"eval_task_{selector.key}", "greater_is_better": selector.greater_is_better}
            if selector else {"metric_for_best_model": "eval_task_loss", "greater_is_better": False})
    return {"eval_strategy": "steps", "eval_steps": every, "load_best_model_at_end": True,
            "per_device_eval_batch_size": 1, **best}


def _previous_losses(path: Path, upto: int) -> list[dict]:
    if not path.exists():
        return []
    return [r for r in json.loads(path.read_text(encoding="utf-8")) if r["step"] <= upto]


def _save_adapter(trainer: Trainer, tokenizer, dest: Path) -> None:
    """Write the PEFT adapter (safetensors) + tokenizer to a temp folder beside `dest`, then swap it in
    (io.replace_dir: the old adapter stays readable until the new one is complete). Every rank calls
    this: under FSDP / DeepSpeed ZeRO-3 save_model gathers the shards; only rank 0 writes."""
    tmp = dest.with_name(f".{dest.name}.new")  # one name for every rank (owned.py knows it as temp debris)
    main = trainer.is_world_process_zero()
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
    trainer.save_model(str(tmp))
    if main:
        (tmp / "training_args.bin").unlink(missing_ok=True)  # a pickle the Trainer adds; adapters hold none
        tokenizer.save_pretrained(str(tmp))
        replace_dir(tmp, dest)
