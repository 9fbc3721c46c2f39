"""The memory plan: peak training memory estimated before any weights load, and what would fit.

The estimate adds up, from the model's config.json and the step plan's largest micro-batch:
- the frozen weights (parameters x dtype size);
- the LoRA adapter with its gradient and two Adam moments (fp32);
- the activations autograd keeps for the backward pass, per token and layer (below), or, with
  gradient checkpointing, one hidden state per token and layer plus one layer recomputed;
- the loss, chunked over positions, so it never holds the logits of the whole micro-batch;
- under bf16 autocast with fp32 weights, the bf16 copies of the frozen linear weights that autograd
  keeps for the input gradients (autocast casts them per call; only weights that need a gradient are
  cached and shared);
- a runtime constant (on CPU the process itself: interpreter, torch, data; on GPU the allocator's slack).

The per-token constant counts the tensors a Llama-style layer saves (norm inputs and outputs,
q/k/v/o, the MLP's gate/up, the LoRA A outputs; what train/lean.py recomputes is not counted) and is scaled by ACT_SCALE (CKPT_SCALE
with checkpointing), per activation precision ("fp32", "bf16") and memory source, fitted to measured peaks (benchmarks/bench_memory.py re-measures; the table
and the error are in benchmarks/README.md, "Memory estimate").

    est = estimate(shape, cfg, plan.micro_tokens_max)   # shape = ModelShape.load(model_ref)
    pre = preflight(cfg, mixture, model_ref)  # plan + estimate + budget; raises, or auto-fits
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .. import allocator
from ..config import Config
from ..errors import TellkitError
from ..mix import Mixture
from .plan import (
    TrainPlan,
    epoch_positions,
    example_lengths,
    micro_batch_slots,
    plan_lines,
    plan_training,
)
from .plan import report_lines as plan_report_lines

GIB = 1024 ** 3
# Fitted to measured peaks (benchmarks/README.md, "Memory estimate"; SmolLM2-135M, fp32, 2-core CPU).
# On CPU with glibc's malloc the resident memory is 2-2.5x the tensors autograd keeps: its heap holds on
# to the freed temporaries between them (fixing glibc's mmap threshold halves it but halved the speed;
# tcmalloc halves it at the same speed: allocator.py, which the CLI preloads when installed). With
# checkpointing the layer inputs are few but interleaved with each layer's recomputed temporaries, so
# the measured factor is larger still. On CUDA (PyTorch's caching allocator) the factors are the plain
# count: not yet measured there.
# Keyed by where the memory comes from: on CPU the malloc (allocator.kind(); "system" = glibc's, whose heap
# fragments, while tcmalloc, mimalloc and jemalloc reuse freed blocks; mimalloc and jemalloc measured
# without checkpointing only), on CUDA PyTorch's caching allocator.
# First key: the precision activations are kept in ("fp32"; "bf16" = bf16 autocast or 16-bit weights),
# then the memory source. None = not measured yet: the fp32 factor is used and the estimate says
# "uncalibrated". Refit with benchmarks/bench_memory.py --model smollm2-135m-instruct (its default
# sweep has fp32 and bf16 rows; run it once per malloc: TELLKIT_MALLOC=system / mimalloc / tcmalloc).
ACT_SCALE = {  # measured / the count of saved_per_token_layer
    # fp32 "mimalloc": the sweep of 2026-12-05 (1x512 .. 8x1024, the real mixture): -9%..+10% at every shape
    "fp32": {"system": 2.35, "tcmalloc": 1.22, "mimalloc": 1.52, "jemalloc": 1.21, "cuda": 1.0},
    # bf16 "system": fitted to one peak (issue 29: SmolLM2 8 x 512, glibc, 5.80 GiB; Xeon with AMX-bf16).
    # bf16 "mimalloc" (the default install): fitted to the sweep of 2026-12-05 (benchmarks/README.md:
    # 1x512 .. 8x1024 and the real mixture, AMD EPYC with avx512_bf16): -8% .. +5% at every shape.
    # bf16 "tcmalloc" / "jemalloc": fitted to the sweep of 2026-12-05 (same machine and shapes): -3%..+2% / -4%..+3%.
    "bf16": {"system": 2.92, "tcmalloc": 1.70, "mimalloc": 1.95, "jemalloc": 1.75, "cuda": 1.0},
}
CKPT_SCALE = {  # the same with gradient checkpointing
    # fp32 "system": 13.0 -> 9.3 from the 2026-12-05 glibc runs (4 and 8 x 512, 8 x 1024: -7%..+6%; was +14..+38%)
    "fp32": {"system": 9.3, "tcmalloc": 1.25, "mimalloc": 1.4, "jemalloc": 1.25, "cuda": 1.0},
    # bf16 "system": 3.04 GiB at 8 x 512 (issue 29); "mimalloc": the 2026-12-05 sweep, -4% / +4% at 8 / 4 x 512
    # bf16 "tcmalloc" / "jemalloc": fitted at 8 x 512 and 4 x 512 (2026-12-05); below 1 because these mallocs
    # hand the recomputed layers' freed pages back, so the peak holds less than the count of saved tensors
    "bf16": {"system": 8.35, "tcmalloc": 0.6, "mimalloc": 1.4, "jemalloc": 0.3, "cuda": 1.0},
}
RUNTIME_GIB = {"cpu": 0.6, "cuda": 0.5}  # the process without model or batch / CUDA context and slack
# The estimate's error as measured in the shape sweeps (benchmarks/README.md), printed with it, keyed like
# the factors; "±25%" where a factor rests on one or two points, not a sweep.
ERROR = {
    # fp32 "system": -7%..+6% of glibc's usual peak; +19% in a run whose heap reused more (4 x 512: 4.02 vs 4.85 GiB)
    "fp32": {"system": "-7%..+19%", "tcmalloc": "-1%..+3%", "mimalloc": "-9%..+10%", "jemalloc": "±25%"},
    # "system": the bf16 sweeps of 2026-12-05 with glibc: +0..+6% of its usual peak at every shape, but glibc's
    # peak itself is bimodal run to run (4 x 512: 3.54-3.56 or 2.87-2.98 GiB), so a lucky run sits up to 28% lower
    "bf16": {"system": "+0%..+28%", "mimalloc": "-8%..+6%", "tcmalloc": "-3%..+2%", "jemalloc": "-4%..+3%"},
}
UNCALIBRATED = "uncalibrated"  # printed instead when a factor above is None (or the device is cuda)


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs from a decoder's config.json."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tied: bool

    @classmethod
    def load(cls, model_ref: str, *, trust_remote_code: bool = False) -> "ModelShape | None":
        """From a model folder's config.json (or the HF cache for a hub id); None when it is not a
        decoder config this estimate understands (the memory check is then skipped, and says so)."""
        raw = _read_config(model_ref, trust_remote_code)
        if raw is None:
            return None
        raw = raw.get("text_config") or raw  # multimodal wrappers keep the decoder's numbers here
        try:
            heads = int(raw["num_attention_heads"])
            hidden = int(raw["hidden_size"])
            return cls(hidden=hidden, layers=int(raw["num_hidden_layers"]), heads=heads,
                       kv_heads=int(raw.get("num_key_value_heads") or heads),
                       head_dim=int(raw.get("head_dim") or hidden // heads),
                       intermediate=int(raw["intermediate_size"]), vocab=int(raw["vocab_size"]),
                       tied=bool(raw.get("tie_word_embeddings", True)))
        except (KeyError, TypeError, ValueError):
            return None

    def linears(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each linear layer of one decoder layer, by its usual module name."""
        q, kv, h, i = self.heads * self.head_dim, self.kv_heads * self.head_dim, self.hidden, self.intermediate
        return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}

    @property
    def params(self) -> int:
        per_layer = sum(a * b for a, b in self.linears().values()) + 2 * self.hidden  # + 2 norms
        embed = self.vocab * self.hidden * (1 if self.tied else 2)
        return self.layers * per_layer + embed + self.hidden

    def targeted(self, targets: str | list[str]) -> dict[str, tuple[int, int]]:
        """The linears lora.target_modules adapts ("all-linear": every one but the output head)."""
        if targets == "all-linear":
            return self.linears()
        names = {targets} if isinstance(targets, str) else set(targets)
        return {k: v for k, v in self.linears().items() if k in names}

    def lora_params(self, r: int, targets: str | list[str]) -> int:
        return self.layers * sum(r * (a + b) for a, b in self.targeted(targets).values())

    def saved_per_token_layer(self, r: int, n_targets: int) -> int:
        """Elements one layer keeps per token for the backward pass (no checkpointing, dropout 0), with
        train/lean.py's recomputation (act(gate), the MLP product and the norm outputs are rebuilt, not
        kept): the two norm inputs and o_proj's input (3h), q after RoPE and the attention output (2q),
        k and v (2kv), the MLP's gate and up (2i), each LoRA's x @ A (r). Counted with saved-tensor hooks
        on SmolLM2 in fp32: exact (10,616 without lean.py, 6,392 with it)."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        return 3 * self.hidden + 2 * q + 2 * kv + 2 * self.intermediate + r * n_targets


@dataclass
class Estimate:
    parts_gib: dict[str, float]  # weights, lora, activations, loss, runtime
    budget_gib: float
    budget_source: str  # "free RAM", "free on cuda:0", "train.memory_budget_gb"
    device: str
    micro_tokens: int
    gradient_checkpointing: bool
    malloc: str = "system"  # allocator.kind() of the process that estimated (CPU)
    precision: str = "fp32"  # the activations' ("bf16": autocast or 16-bit weights), which keys the factors
    calibrated: bool = True  # False: no factor measured for this precision and malloc yet

    @property
    def error(self) -> str:
        if self.device != "cpu" or not self.calibrated:
            return UNCALIBRATED
        return ERROR[self.precision].get(self.malloc, "±25%")

    @property
    def total_gib(self) -> float:
        return sum(self.parts_gib.values())

    @property
    def fits(self) -> bool:
        return self.total_gib <= self.budget_gib

    def summary(self) -> dict:
        return {"estimate_gib": round(self.total_gib, 2), "error": self.error, "precision": self.precision,
                "parts_gib": {k: round(v, 3) for k, v in self.parts_gib.items()},
                "budget_gib": round(self.budget_gib, 2), "budget_source": self.budget_source,
                "device": self.device, "micro_batch_tokens": self.micro_tokens,
                "gradient_checkpointing": self.gradient_checkpointing, "fits": self.fits,
                "malloc": self.malloc if self.device == "cpu" else None}


@dataclass
class Preflight:
    """What training will do (plan), whether it fits (memory), and the config it runs with (`cfg`:
    the user's, or the auto-fitted copy)."""

    cfg: Config
    plan: TrainPlan
    memory: Estimate | None
    notes: list[str] = field(default_factory=list)  # the auto-fit change, or why memory was not checked

    def lines(self) -> list[str]:
        return preflight_lines(self.summary())

    def summary(self) -> dict:
        return {"plan": self.plan.summary(), "memory": self.memory.summary() if self.memory else None,
                "notes": list(self.notes)}


def estimate(shape: ModelShape, cfg: Config, micro_tokens: int, *, budget: tuple[float, str, str] | None = None,
             gradient_checkpointing: bool | None = None) -> Estimate:
    """Peak memory for micro-batches of up to `micro_tokens` token slots (TrainPlan.micro_tokens_max)."""
    device, weight_bytes, act_bytes = _precision(cfg)
    ckpt = cfg.train.gradient_checkpointing if gradient_checkpointing is None else gradient_checkpointing
    malloc = allocator.kind()
    memory = malloc if device == "cpu" else device  # what the scale factors are keyed by
    precision = "bf16" if act_bytes == 2 else "fp32"
    scale, calibrated = _scale(CKPT_SCALE if ckpt else ACT_SCALE, precision, memory)
    lora = cfg.lora
    per_layer = shape.saved_per_token_layer(lora.r, len(shape.targeted(lora.target_modules))) * act_bytes
    if ckpt:  # the layer inputs stay; one layer's activations exist again during its backward
        acts = micro_tokens * (shape.layers * shape.hidden * act_bytes + per_layer) * scale
    else:
        acts = micro_tokens * shape.layers * per_layer * scale
    acts += micro_tokens * shape.hidden * act_bytes * 2  # final norm input and output (the loss's input)
    from .loss import CHUNK_ELEMENTS

    rows = max(1, CHUNK_ELEMENTS // shape.vocab)  # positions per chunk of the fused head + cross-entropy
    loss = min(micro_tokens, rows) * shape.vocab * 4 * 3  # a chunk's logits, softmax and gradient, fp32
    parts = {"weights": shape.params * weight_bytes / GIB,
             "lora": shape.lora_params(lora.r, lora.target_modules) * 16 / GIB,  # fp32 weight, gradient, 2 Adam moments
             "activations": acts / GIB, "loss": loss / GIB, "runtime": RUNTIME_GIB[device]}
    if act_bytes < weight_bytes:  # autocast: every layer's low-precision weight copies live until its backward
        parts["weight_copies"] = shape.layers * sum(a * b for a, b in shape.linears().values()) * act_bytes / GIB
    size, source, dev = budget or available(cfg)
    return Estimate(parts_gib=parts, budget_gib=size, budget_source=source, device=dev,
                    micro_tokens=int(micro_tokens), gradient_checkpointing=ckpt, malloc=malloc,
                    precision=precision, calibrated=calibrated and device == "cpu")


def _scale(table: dict, precision: str, memory: str) -> tuple[float, bool]:
    """(factor, measured?) for this precision and memory source; an unmeasured one borrows fp32's."""
    factor = table[precision].get(memory)
    return (factor, True) if factor is not None else (table["fp32"][memory], False)


def available(cfg: Config) -> tuple[float, str, str]:
    """(GiB, where the number comes from, device): train.memory_budget_gb, else free device memory on
    GPU, else available RAM plus this process's own resident memory (the estimate counts the process)."""
    device = "cuda" if _cuda() else "cpu"
    if cfg.train.memory_budget_gb is not None:
        return cfg.train.memory_budget_gb, "train.memory_budget_gb", device
    if device == "cuda":
        import torch

        index = int(os.environ.get("LOCAL_RANK", "0"))
        return torch.cuda.mem_get_info(index)[0] / GIB, f"free on cuda:{index}", device
    import psutil

    free = psutil.virtual_memory().available + psutil.Process().memory_info().rss
    return free / GIB, "free RAM", device


def preflight(cfg: Config, mixture: Mixture, model_ref: str, *, world_size: int | None = None) -> Preflight:
    """The step plan and the memory check of one training run, before any weights load.

    Raises TellkitError (one line: the estimate, what is free, the settings that would fit) when the
    estimate exceeds the budget, unless train.auto_fit is on: then the returned `cfg` is a copy with
    that change applied (same examples per optimizer step) and `notes` says what changed."""
    plan = plan_training(cfg, mixture, world_size)
    shape = ModelShape.load(model_ref, trust_remote_code=cfg.model.trust_remote_code)
    if shape is None:
        return Preflight(cfg, plan, None, [f"memory not estimated: {model_ref} has no decoder config.json "
                                           "this estimate knows (hidden_size, num_hidden_layers, ...)"])
    budget = available(cfg)
    est = estimate(shape, cfg, plan.micro_tokens_max, budget=budget)
    if est.fits:
        return Preflight(cfg, plan, est)
    fits = fitting_settings(shape, cfg, mixture, plan.world_size, budget)
    if cfg.train.auto_fit and fits:
        change, fitted_est = fits[0]
        fitted = cfg.model_copy(deep=True)
        for key, value in change.items():
            setattr(fitted.train, key, value)
        note = (f"auto_fit: {_overrides(change)} (was {_overrides({k: getattr(cfg.train, k) for k in change})}): "
                f"~{fitted_est.total_gib:.1f} GiB instead of ~{est.total_gib:.1f}, still "
                f"{plan.examples_per_step} examples per optimizer step")
        return Preflight(fitted, plan_training(fitted, mixture, world_size), fitted_est, [note])
    raise TellkitError(_too_big(est, fits))


def fitting_settings(shape: ModelShape, cfg: Config, mixture: Mixture, world: int,
                     budget: tuple[float, str, str]) -> list[tuple[dict, Estimate]]:
    """Settings that fit the budget with the same examples per optimizer step, best first: the largest
    micro-batch without gradient checkpointing (no extra compute), then with it."""
    t = cfg.train
    lengths = example_lengths(mixture)
    per_device = t.batch_size * t.grad_accum
    out = []
    for ckpt in ((False, True) if not t.gradient_checkpointing else (True,)):
        for bs in sorted((b for b in range(1, t.batch_size + 1) if per_device % b == 0), reverse=True):
            if bs == t.batch_size and ckpt == t.gradient_checkpointing:
                continue  # the setting that does not fit
            slots, _ = micro_batch_slots(lengths[epoch_positions(len(lengths), bs, world)], bs, t.packing)
            est = estimate(shape, cfg, int(slots.max()), budget=budget, gradient_checkpointing=ckpt)
            if est.fits:
                change = {"batch_size": bs, "grad_accum": per_device // bs} if bs != t.batch_size else {}
                if ckpt != t.gradient_checkpointing:
                    change["gradient_checkpointing"] = ckpt
                out.append((change, est))
                break  # the largest micro-batch that fits, for this checkpointing setting
    return out


def preflight_lines(summary: dict) -> list[str]:
    """Human-readable lines from `Preflight.summary()`: the plan, the memory estimate, notes."""
    out = plan_lines(summary["plan"])
    m = summary["memory"]
    if m is not None:
        parts = ", ".join(f"{k} {v:.2f}" for k, v in m["parts_gib"].items())
        out.append(f"memory: ~{m['estimate_gib']:.1f} GiB peak ({m['error']}; {parts}) for micro-batches of up "
                   f"to {m['micro_batch_tokens']:,} tokens{', gradient checkpointing' if m['gradient_checkpointing'] else ''}"
                   f"; budget {m['budget_gib']:.1f} GiB ({m['budget_source']}): {'fits' if m['fits'] else 'does NOT fit'}"
                   + (f"; malloc: {m['malloc']}" if m.get("malloc") else ""))
        if m.get("malloc") == "system" and not m["gradient_checkpointing"]:
            out.append(f"hint: {allocator.HINT}")
    return out + [f"note: {n}" for n in summary["notes"]]


def report_lines(summary: dict) -> list[str]:
    """Markdown lines for a run report, from `Preflight.summary()` as stored in run.json."""
    out = plan_report_lines(summary["plan"])
    m = summary.get("memory")
    if m:
        parts = ", ".join(f"{k} {v:.2f}" for k, v in m["parts_gib"].items())
        out += ["", f"Memory plan: ~{m['estimate_gib']:.1f} GiB peak estimated ({m['error']}; {parts} GiB) for "
                    f"micro-batches of up to {m['micro_batch_tokens']:,} tokens on {m['device']}"
                    f"{' with gradient checkpointing' if m['gradient_checkpointing'] else ''}; "
                    f"budget {m['budget_gib']:.1f} GiB ({m['budget_source']}) when it started."]
    return out + [f"> Note: {n}" for n in summary.get("notes", [])]


def _too_big(est: Estimate, fits: list[tuple[dict, Estimate]]) -> str:
    head = (f"training needs about {est.total_gib:.1f} GiB (estimate {est.error}, micro-batch of "
            f"{est.micro_tokens:,} tokens) but the budget is {est.budget_gib:.1f} GiB ({est.budget_source})")
    if not fits:
        return (head + "; nothing fits, not even train.batch_size=1 with train.gradient_checkpointing=true: "
                "lower train.max_length, or use a machine with more memory")
    options = " or ".join(f"{_overrides(c)} (~{e.total_gib:.1f} GiB)" for c, e in fits)
    return (head + f"; settings that fit, with the same examples per optimizer step: {options}; "
            "or set train.auto_fit=true to apply the first")


def _overrides(change: dict) -> str:
    return " ".join(f"train.{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in change.items())


def _precision(cfg: Config) -> tuple[str, int, int]:
    """(device, bytes per weight, bytes per saved activation element), as the trainer will run."""
    import torch

    from ..models.load import resolve_dtype
    from .precision import use_bf16

    device = "cuda" if _cuda() else "cpu"
    weight = torch.empty((), dtype=resolve_dtype(cfg.model.dtype)).element_size()
    return device, weight, 2 if weight == 2 or use_bf16(cfg.train.bf16) else 4


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _read_config(model_ref: str, trust_remote_code: bool) -> dict | None:
    path = Path(model_ref) / "config.json"
    if path.is_file():
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
    try:  # a hub id: the config from the local HF cache only (validate must not download weights)
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(model_ref, trust_remote_code=trust_remote_code,
                                          local_files_only=True).to_dict()
    except Exception:  # noqa: BLE001 - any failure just means no estimate; the caller says so
        return None
