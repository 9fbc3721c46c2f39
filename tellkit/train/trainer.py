"""LoRA training of a mixture with the HF Trainer.

The whole step is the library's; what is ours: the rows come in mixture order
(a SequentialSampler, because the mixture already *is* the seeded shuffle and
under DDP accelerate gives each rank a disjoint slice of that one order),
packing, throughput accounting, the loss log, and the NaN stop.
"""

from __future__ import annotations

import json
import math
import os
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

from ..config import Config
from ..errors import TellkitError
from ..mix import Mixture
from ..models.resolve import load_model_and_tokenizer
from ..rundir import last_checkpoint
from .callbacks import LossLog, Progress
from .collate import Rows, collate_packed, collate_padded
from .packing import efficiency, pack


class MixtureTrainer(Trainer):
    def _get_train_sampler(self, train_dataset=None):
        return SequentialSampler(train_dataset if train_dataset is not None else self.train_dataset)


def use_bf16(setting) -> bool:
    if setting != "auto":
        return bool(setting)
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    # Native bf16 only (AVX512_BF16 / AMX): there a bf16-autocast LoRA step of SmolLM2-135M is
    # ~1.5x faster than fp32 (benchmarks/bench_matmul.py); plain AVX512 would only emulate bf16.
    return bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)())


def train_mixture(cfg: Config, model_ref, mixture: Mixture, out: Path) -> dict:
    """Train a LoRA adapter on the mixture; write out/adapter and out/loss_log.json; return stats."""
    t = cfg.train
    set_seed(t.seed)  # before LoRA init, so the adapter's initial weights follow the seed
    model, tokenizer = load_model_and_tokenizer(model_ref, dtype=cfg.model.dtype,
                                                trust_remote_code=cfg.model.trust_remote_code,
                                                allow_pickle=cfg.model.allow_pickle)
    model.config.use_cache = False  # a cache would also disable packed-sequence masking
    model = get_peft_model(model, PeftLoraConfig(
        r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
        target_modules=cfg.lora.target_modules, task_type="CAUSAL_LM"))

    data = mixture.dataset()
    # `data` is an index map over the memory-mapped table: read lengths through it, in mixture order.
    lengths = np.asarray(data.select_columns(["n_tokens"]).with_format("numpy")["n_tokens"], dtype=np.int64)
    groups = pack(lengths, t.max_length) if t.packing else [[i] for i in range(len(data))]
    if not groups:
        raise TellkitError("the mixture is empty: nothing to train on")
    rows = Rows(data, groups)
    pad_id = tokenizer.pad_token_id
    collate = collate_packed(pad_id, t.max_length) if t.packing else collate_padded(pad_id)

    world = int(os.environ.get("WORLD_SIZE", "1"))
    per_step = t.batch_size * t.grad_accum * world
    row_tokens = rows.tokens(lengths)
    steps_per_epoch = math.ceil(len(rows) / per_step)
    max_steps = t.max_steps or math.ceil(steps_per_epoch * t.epochs)
    tokens_per_step = _tokens_per_step(row_tokens, per_step, max_steps, t.batch_size, world)

    ckpt_dir = out / "checkpoints"
    args = TrainingArguments(
        output_dir=str(ckpt_dir), per_device_train_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum, max_steps=max_steps, learning_rate=t.lr,
        lr_scheduler_type=t.scheduler, warmup_steps=int(t.warmup_ratio * max_steps),
        weight_decay=t.weight_decay, max_grad_norm=t.max_grad_norm, logging_steps=t.logging_steps,
        save_strategy="steps", save_steps=t.save_steps, save_total_limit=t.save_total_limit,
        seed=t.seed, data_seed=t.seed, bf16=use_bf16(t.bf16), use_cpu=not torch.cuda.is_available(),
        report_to="none", disable_tqdm=True, remove_unused_columns=False, dataloader_num_workers=0,
        ddp_find_unused_parameters=False,  # every LoRA weight gets a gradient; skips a graph walk per step
        logging_nan_inf_filter=False,  # a NaN/inf step loss must reach the NaN guard, not be averaged away
        **_dev_selection(mixture, t.save_steps),
    )
    loss_log = LossLog(out / "loss_log.json", tokens_per_step)
    with args.main_process_first(local=False):  # ranks > 0 look for checkpoints after rank 0 claimed `out`
        resume = last_checkpoint(ckpt_dir)  # newest *complete* one: a kill can tear a checkpoint mid-write
    resume_step = int(resume.rsplit("-", 1)[-1]) if resume else 0
    if resume:
        loss_log.records = _previous_losses(out / "loss_log.json", resume_step)
    dev = Rows(mixture.task, [[int(i)] for i in mixture.dev_rows]) if len(mixture.dev_rows) else None
    trainer = MixtureTrainer(model=model, args=args, train_dataset=rows, eval_dataset=dev,
                             data_collator=collate,
                             callbacks=[Progress(tokens_per_step), loss_log])
    trainer.remove_callback(PrinterCallback)  # our progress bar and loss log replace its raw dict prints
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume)
    wall = time.perf_counter() - start
    if loss_log.bad_step is not None:
        last = last_checkpoint(ckpt_dir)
        raise TellkitError(f"training loss became NaN/inf at step {loss_log.bad_step} ({loss_log.bad_reason}); "
                           "lower train.lr "
                           f"(now {t.lr:g}); last good checkpoint: {last or 'none yet'}")

    _save_adapter(trainer, tokenizer, out / "adapter")
    trained_tokens = int(tokens_per_step[resume_step: trainer.state.global_step].sum())  # this session's
    return {
        "optimizer_steps": trainer.state.global_step, "rows": len(rows), "rows_per_step": per_step,
        "epochs": t.epochs if not t.max_steps else None, "world_size": world,
        "train_tokens": int(tokens_per_step[: trainer.state.global_step].sum()),
        "packing": t.packing, "packing_efficiency": round(efficiency(lengths, groups, t.max_length), 4) if t.packing else None,
        "wall_seconds": round(wall, 2), "tokens_per_second": round(trained_tokens / wall, 1) if wall else None,
        "resumed_from": resume, "bf16": args.bf16,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "final_loss": loss_log.records[-1]["loss"] if loss_log.records else None,
        "dev_examples": int(len(mixture.dev_rows)),
        "best_checkpoint": trainer.state.best_model_checkpoint, "best_dev_loss": trainer.state.best_metric,
    }


def _dev_selection(mixture: Mixture, every: int) -> dict:
    """With a dev split: dev loss at every save, and the best checkpoint becomes the adapter."""
    if not len(mixture.dev_rows):
        return {}
    return {"eval_strategy": "steps", "eval_steps": every, "load_best_model_at_end": True,
            "metric_for_best_model": "eval_loss", "greater_is_better": False, "per_device_eval_batch_size": 1}


def _tokens_per_step(row_tokens: np.ndarray, per_step: int, max_steps: int, batch_size: int, world: int) -> np.ndarray:
    """Real tokens in each optimizer step; every epoch restarts the same row order. One process ends
    an epoch with a short step; under DDP, accelerate's even_batches fills the last global batch
    (batch_size x world rows) with rows from the start of the epoch instead."""
    n = len(row_tokens)
    seen = n if world == 1 else math.ceil(n / (batch_size * world)) * batch_size * world
    steps = np.add.reduceat(row_tokens[np.arange(seen) % n], np.arange(0, seen, per_step))
    return np.tile(steps, math.ceil(max_steps / len(steps)))[:max_steps].astype(np.int64)


def _previous_losses(path: Path, upto: int) -> list[dict]:
    if not path.exists():
        return []
    return [r for r in json.loads(path.read_text(encoding="utf-8")) if r["step"] <= upto]


def _save_adapter(trainer: Trainer, tokenizer, dest: Path) -> None:
    """Write the PEFT adapter (safetensors) + tokenizer to a temp folder, then swap it in. Every rank
    calls this: under FSDP / DeepSpeed ZeRO-3 save_model gathers the shards; only rank 0 writes."""
    tmp = dest.with_name(dest.name + ".tmp")
    main = trainer.is_world_process_zero()
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
    trainer.save_model(str(tmp))
    if main:
        (tmp / "training_args.bin").unlink(missing_ok=True)  # a pickle the Trainer adds; adapters hold none
        tokenizer.save_pretrained(str(tmp))
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(tmp, dest)
