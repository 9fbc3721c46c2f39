"""The typed configuration: one YAML file, one `Config`.

Every section forbids unknown keys so a typo is an error, not a silently
ignored setting. Defaults are the choices we made where the paper is silent
(ratio counted in tokens, LoRA r=8/alpha=16 on all linear layers); reports
print them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)

from ..methods import DEFAULT_COMPARE, METHODS, NAMES, TRAINED

# numpy's and torch's seeds are 0 .. 2**32 - 1: checked here, so a bad seed fails at load, not mid-training
Seed = Annotated[int, Field(ge=0, le=2 ** 32 - 1)]
Ratio = Annotated[float, Field(ge=0, le=100_000)]  # general tokens : task tokens


class Section(BaseModel):
    # allow_inf_nan=False: `.inf` / `.nan` are valid YAML floats, but no setting means anything with them
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class ModelConfig(Section):
    name: str = "smollm2-135m-instruct"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    trust_remote_code: bool = False
    allow_pickle: bool = False  # load .bin/.pt weights; off because pickle can run code


class DataSource(Section):
    path: str
    format: Literal["auto", "alpaca", "messages", "prompt"] = "auto"
    columns: dict[str, str] = Field(default_factory=dict)  # canonical name -> field name in the file


class TaskConfig(DataSource):
    test_path: str | None = None
    token_budget: PositiveInt | None = None  # seeded subset of the task data by token count


class GeneralConfig(DataSource):
    heldout_path: str | None = None  # held-out general data for the `general` metric


class AnchorConfig(Section):
    text: str | None = None
    file: str | None = None
    position: Literal["prefix", "system"] = "prefix"
    separator: str = "\n\n"  # between the anchor and the first user turn (position: prefix)

    @model_validator(mode="after")
    def _one_source(self) -> "AnchorConfig":
        if self.text is not None and self.file is not None:
            raise ValueError("set anchor.text or anchor.file, not both")
        return self


class MixConfig(Section):
    method: Literal[TRAINED] = "tell"  # the trained methods of tellkit/methods.py
    ratio: Ratio = 100.0
    seed: Seed = 0
    task_repeats: PositiveInt = 1
    allow_general_repeats: bool = False  # reuse general examples when the pool is too small
    tolerance: float = Field(0.01, gt=0, lt=1)  # allowed relative error of the achieved ratio


class LoraConfig(Section):
    r: PositiveInt = 8
    alpha: PositiveFloat = 16
    # 0: on 10-100 task examples an adapter trains for a few dozen steps and underfits long before it
    # overfits, so dropout only slows the fit; with 0, tellkit matches a plain peft loop (issue 12)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: str | list[str] = "all-linear"


class TrainConfig(Section):
    # epochs, lr, scheduler and warm-up were measured against a plain peft + torch loop
    # (benchmarks/ref_loop.py) on 13 and 40 ticket-triage examples (examples/data/tickets, issue 12):
    # with these defaults and the same examples per step, tellkit matches or beats it (json/strict
    # 1.000 for both, field accuracy 0.463 vs 0.425 at 26 steps). A small task set needs optimizer
    # steps: 2 passes is the least the step plan accepts without a warning (train/plan.py).
    epochs: float = Field(2, gt=0, le=1_000_000)
    max_steps: PositiveInt | None = None  # overrides epochs when set
    # 5e-4: at 2e-4, halved again by a cosine, a few dozen LoRA r=8 steps left the quickstart model
    # chatting instead of answering in JSON (issue 12)
    lr: PositiveFloat = 5.0e-4
    batch_size: PositiveInt = 8
    grad_accum: PositiveInt = 1
    max_length: int = Field(1024, ge=16)
    packing: bool = True  # pack examples into max_length rows, no cross-example attention
    seed: Seed = 0
    # constant after a 10% warm-up: the mean lr stays ~0.9 x lr however few the steps (the plan
    # prints it); a cosine or linear decay halves it, and a short run cannot spare half its updates
    scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "constant_with_warmup"
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    bf16: Literal["auto", True, False] = "auto"  # autocast where the hardware has bf16
    save_steps: PositiveInt = 200
    save_total_limit: PositiveInt = 2
    logging_steps: PositiveInt = 1
    # experiment trackers fed by the HF Trainer's own integrations (losses, lr, final scores; compare and
    # sweep cells log as separate runs tagged method/ratio/scale/seed); none by default: nothing leaves the machine
    report_to: list[Literal["tensorboard", "wandb", "mlflow"]] = []
    # Memory (tellkit/train/memory.py estimates the peak before any weights load; none of these three
    # changes what is trained, so they are left out of a run's training hash and a run can resume
    # with them changed):
    # recompute each layer's activations in the backward pass: activation memory drops to about
    # one hidden state per token and layer, for about a third more compute per step
    gradient_checkpointing: bool = False
    # when the estimate exceeds the budget, split the step into smaller micro-batches (same examples
    # per optimizer step: batch_size x grad_accum is kept), then turn on gradient checkpointing
    # if that is not enough; the change is printed and recorded in run.json
    auto_fit: bool = False
    # memory to plan for, in GiB; None = what is free now (available RAM on CPU, free device memory on GPU)
    memory_budget_gb: PositiveFloat | None = None


class EvalConfig(Section):
    metrics: list[str] = Field(default_factory=lambda: ["json"])
    max_new_tokens: PositiveInt = 256
    batch_size: PositiveInt = 8
    limit: PositiveInt | None = None  # evaluate the first N test examples
    # Held out from the task data (seeded, the same rows for every method of a seed); training
    # evaluates dev loss at every save and keeps the best checkpoint, so no method wins by a lucky
    # final step.
    dev_fraction: float = Field(0.0, ge=0, le=0.5)
    # Which checkpoint the dev split keeps: "loss" (lowest task dev loss) or "metric/score" (e.g.
    # json/strict): greedy generation on the dev prompts at every save, scored like `tellkit eval`.
    # Loss tracks the metric poorly once a small task set is learned (the format can be right while
    # the loss still falls, or the loss rise while the format holds); the metric is what eval reports.
    select_by: str = "loss"
    # new tokens per dev prompt when select_by is a metric: each save generates this much per dev
    # example, so short keeps it cheap; 64 holds a short JSON answer (a longer one scores as cut off).
    select_max_new_tokens: PositiveInt = 64
    do_sample: bool = False
    temperature: PositiveFloat = 1.0
    label_field: str = "hallucination"
    positive_label: str = "yes"
    json_schema: str | None = None
    doc_level: bool = False
    max_doc_tokens: PositiveInt | None = None
    bleurt_checkpoint: str | None = None
    # Generation engine: hf = tellkit's continuous batching over transformers (CPU or GPU);
    # vllm = vLLM (GPU; needs `pip install vllm`), the adapter served unmerged. Same metrics files.
    backend: Literal["hf", "vllm"] = "hf"
    # hf backend: at most this many sequences decoded at once (batch_size is the least). None = as many
    # as a 2 GiB KV cache holds, at most 64 on CPU, in even waves: a decode step reads every weight
    # once whatever the batch, so a wider batch costs little more per step.
    max_batch: PositiveInt | None = None
    # End a sequence once its first top-level JSON object is closed, and cut the output there
    # (tellkit/generation/stops.py says what that can change in json/strict). Off: EOS only, exact outputs.
    stop_at_json: bool = False
    # Generation precision. "auto": fp32 on CPU, where tellkit's fp32 decoder is both exact and faster than
    # bf16 autocast (orders: 23.6 vs 27.5 s, benchmarks/README.md); on a GPU, bf16 when training used it.
    # Scoring (general_ood's log-likelihoods: whole batches, no decoding) runs in bf16 wherever training
    # does, CPU included (2.4x faster there). True/False set both.
    bf16: Literal["auto", True, False] = "auto"
    # General ability out of distribution (metric `general_ood`, run by lm-evaluation-harness in-process;
    # docs/general-ability.md): lm-eval task, group or tag names (arc_easy, hellaswag, mmlu, ...) or task
    # YAML files. Default: tellkit's shipped, offline suite (tellkit/evaluate/general_suite): WordNet
    # definitions, 4-way multiple choice, and Python docstrings, bits per byte. compare and sweep measure
    # it in every cell and in base while this is non-empty; [] turns it off.
    general_tasks: list[str] = Field(default_factory=lambda: ["tellkit_wordnet", "tellkit_pydoc"])
    general_limit: PositiveInt | None = None  # the first N documents of each task (lm-eval's limit); None = all
    # The general score the forgetting budget (compare.max_general_drop) and the trade-off plot use,
    # "TASK/METRIC" as lm-eval names it (e.g. tellkit_pydoc/bits_per_byte, arc_easy/acc_norm). None = the
    # first task's accuracy (acc, else acc_norm, exact_match, ...): the default suite's WordNet accuracy.
    general_score: str | None = Field(None, pattern=r"^[^/\s]+/[^/\s]+$")

    @field_validator("select_by")
    @classmethod
    def _known_score(cls, value: str) -> str:
        if value == "loss":
            return value
        metric, _, score = value.partition("/")
        if metric not in SELECTABLE:
            raise ValueError(f"choose 'loss' or 'metric/score' with metric one of {', '.join(sorted(SELECTABLE))}")
        if score not in SELECTABLE[metric]:
            raise ValueError(f"metric {metric!r} has no score {score!r}; allowed: "
                             + ", ".join(f"{metric}/{s}" for s in SELECTABLE[metric]))
        return value

    @model_validator(mode="after")
    def _schema_for_schema_score(self) -> "EvalConfig":
        if self.select_by == "json/schema" and self.json_schema is None:
            raise ValueError("eval.select_by=json/schema needs eval.json_schema (the schema to validate against)")
        if "general_ood" in self.metrics and not self.general_tasks:
            raise ValueError("eval.metrics has general_ood but eval.general_tasks is empty; name lm-eval tasks "
                             "(default: tellkit_wordnet, tellkit_pydoc) or drop general_ood from eval.metrics")
        return self


# The scores each text metric reports (tellkit/metrics; tests/train/test_select.py checks this
# table against the registry). Here, not read from the registry, because that imports scipy: seconds
# on every config load.
SELECTABLE = {
    "json": ("strict", "lenient", "schema", "field_exact"),
    "label": ("accuracy", "precision", "recall", "f1"),
    **{name: (name,) for name in ("chrf", "chrf++", "bleu", "ter")},
    "bleurt": ("bleurt",),
}


Method = Literal[NAMES]


class CompareConfig(Section):
    methods: list[Method] = Field(
        default_factory=lambda: list(DEFAULT_COMPARE)
    )
    seeds: list[Seed] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    # The score that names the winner (whose run is linked as best/): "metric/score", e.g. json/strict;
    # None = the first headline score (label/accuracy, then json/strict, chrF, ...).
    score: str | None = Field(None, pattern=r"^[\w+-]+/[\w+-]+$")
    # The forgetting budget: a method whose general score (eval.general_score, out of distribution) falls
    # more than this below base's, in the score's own units (0.03 = 3 points of accuracy), cannot win;
    # the winner is the best task score among the methods within it; sweeps draw it on their Pareto plots.
    # null = task score only. Why 0.03 and why the point estimate: docs/general-ability.md (the default
    # suite's measured noise: a paired interval of about +-1.1 points at 1,200 questions).
    max_general_drop: float | None = Field(0.03, ge=0)


class SweepConfig(Section):
    ratios: list[Ratio] = Field(default_factory=lambda: [0, 1, 3, 10, 30, 100], min_length=1)
    task_tokens: list[PositiveInt] = Field(default_factory=lambda: [1000, 10000], min_length=1)
    methods: list[Method] = Field(default_factory=lambda: ["tell", "sft"])
    seeds: list[Seed] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    # Skip cells that would train on more tokens than this (mixture tokens x epochs): the largest
    # ratio that fits then differs per scale. Skipped cells are listed in the report.
    max_train_tokens: PositiveInt | None = None
    # The scales (a subset of task_tokens) at which the ratio methods (tell, sft-matched, general-only)
    # run; the ratio-free ones (sft, sft+anchor) run at every scale. None = every scale. The paper's
    # data-efficiency question, "how much SFT data equals TELL at 10^4 tokens", is TELL at one scale
    # against SFT at several: task_tokens: [10000, 30000, 100000], mixed_task_tokens: [10000].
    mixed_task_tokens: list[PositiveInt] | None = None
    # The score the curves and the multiplier use ("metric/score", e.g. json/strict); None = the first
    # headline score (label/accuracy, then json/strict, chrF, ...).
    score: str | None = Field(None, pattern=r"^[\w+-]+/[\w+-]+$")

    @model_validator(mode="after")
    def _mixed_scales_are_swept(self) -> "SweepConfig":
        extra = sorted(set(self.mixed_task_tokens or ()) - set(self.task_tokens))
        if extra:
            raise ValueError(f"sweep.mixed_task_tokens {extra} must be among sweep.task_tokens {self.task_tokens}")
        return self


class ProbeConfig(Section):
    layer: float | None = None  # None = middle layer; an int index, or a fraction of depth in (0, 1)
    pooling: Literal["last", "mean"] = "last"
    n_queries: PositiveInt = 64  # per group
    batch_size: PositiveInt = 8


class OutputConfig(Section):
    dir: str = "runs/default"


class Config(Section):
    model: ModelConfig = Field(default_factory=ModelConfig)
    task: TaskConfig | None = None
    general: GeneralConfig | None = None
    anchor: AnchorConfig = Field(default_factory=AnchorConfig)
    mix: MixConfig = Field(default_factory=MixConfig)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    compare: CompareConfig = Field(default_factory=CompareConfig)
    sweep: SweepConfig = Field(default_factory=SweepConfig)
    probe: ProbeConfig = Field(default_factory=ProbeConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    @model_validator(mode="after")
    def _needs_data(self) -> "Config":
        if self.task is None:  # even general-only: its general tokens are counted against the task's
            raise ValueError("the config needs a `task:` section with a path to the task data")
        if METHODS[self.mix.method].general and self.general is None:
            raise ValueError(f"mix.method={self.mix.method} needs a `general:` section with a path")
        chosen = self.compare.score
        if chosen and chosen.split("/")[0] not in self.eval.metrics:  # fail before a compare trains for hours
            raise ValueError(f"compare.score {chosen!r} needs metric {chosen.split('/')[0]!r} in eval.metrics "
                             f"(now {list(self.eval.metrics)})")
        return self
