"""The memory plan: the model's size from its config.json, a budget that is too small stops training
with one `error:` line before anything is written, and train.auto_fit keeps the examples per step."""

from __future__ import annotations

import pytest
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from tellkit.api import load
from tellkit.cli import main
from tellkit.errors import TellkitError
from tellkit.mix.prepare import mix, prepare
from tellkit.runs.rundir import training_hash
from tellkit.train.memory import ModelShape, estimate, preflight
from tellkit.train.plan import plan_training


@pytest.fixture
def planned(config_file):
    def build(*overrides):
        cfg = load(config_file, list(overrides))
        p = prepare(cfg)
        return cfg, mix(cfg, prepared=p), p.model_ref

    return build


def test_model_shape_counts_the_real_parameters(tiny_model):
    shape = ModelShape.load(str(tiny_model))
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    assert shape.params == sum(p.numel() for p in model.parameters())
    peft = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM"))
    assert shape.lora_params(4, "all-linear") == sum(p.numel() for p in peft.parameters() if p.requires_grad)
    assert shape.lora_params(4, ["q_proj", "v_proj"]) < shape.lora_params(4, "all-linear")


def test_not_a_decoder_config_skips_the_estimate_and_says_so(tmp_path, planned):
    (tmp_path / "config.json").write_text('{"model_type": "something-else"}')
    assert ModelShape.load(str(tmp_path)) is None
    cfg, mixture, _ = planned()
    pre = preflight(cfg, mixture, str(tmp_path))
    assert pre.memory is None and "memory not estimated" in pre.notes[0]


SMOLLM2 = ModelShape(hidden=576, layers=30, heads=9, kv_heads=3, head_dim=64, intermediate=1536, vocab=49152,
                     tied=True)  # SmolLM2-135M's config.json


def test_smollm2_shape_has_its_published_size():
    assert SMOLLM2.params == 134_515_008  # sum of the safetensors shapes
    assert SMOLLM2.lora_params(8, "all-linear") == 2_442_240  # benchmarks/README.md: N_lora


@pytest.mark.parametrize("malloc, ckpt_share", [("tcmalloc", 0.5), ("system", 0.8)])
def test_estimate_grows_with_the_micro_batch_and_checkpointing_cuts_it(planned, monkeypatch, malloc, ckpt_share):
    # Measured at 8 x 512 (benchmarks/README.md): checkpointing cuts the peak from 4.92 to 1.79 GiB with
    # tcmalloc, but only from 8.19 to 6.12 GiB with glibc's malloc (its heap keeps the freed recomputations).
    monkeypatch.setattr("tellkit.allocator.kind", lambda: malloc)
    cfg, _, _ = planned("train.memory_budget_gb=100")
    shape = SMOLLM2
    small, large = estimate(shape, cfg, 512), estimate(shape, cfg, 8192)
    assert large.parts_gib["activations"] > 10 * small.parts_gib["activations"]
    ckpt = estimate(shape, cfg, 8192, gradient_checkpointing=True)
    assert ckpt.parts_gib["activations"] < large.parts_gib["activations"] * ckpt_share
    assert small.budget_gib == 100 and small.budget_source == "train.memory_budget_gb"
    assert small.summary()["malloc"] == malloc


def _budget_between(cfg, mixture, model_ref, bs_fit: int) -> float:
    """A budget that train.batch_size=bs_fit fits and the config's batch size does not."""
    shape = ModelShape.load(model_ref)

    def need(bs):
        c = cfg.model_copy(deep=True)
        c.train.batch_size = bs
        return estimate(shape, c, plan_training(c, mixture).micro_tokens_max, budget=(1e9, "", "cpu")).total_gib

    assert need(bs_fit) < need(cfg.train.batch_size)
    return (need(bs_fit) + need(cfg.train.batch_size)) / 2


def test_too_small_a_budget_stops_run_with_one_error_line_and_writes_nothing(config_file, capsys):
    for command in ("validate", "run"):
        assert main([command, str(config_file), "train.memory_budget_gb=0.01"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: training needs about ")
        assert "the budget is 0.0 GiB (train.memory_budget_gb)" in err[0] and "lower train.max_length" in err[0]
        assert not (config_file.parent / "run").exists()


def test_error_names_settings_that_fit_and_they_do(planned, capsys):
    cfg, mixture, ref = planned("train.batch_size=8", "train.max_length=128", "train.packing=false")
    budget = _budget_between(cfg, mixture, ref, bs_fit=2)
    cfg.train.memory_budget_gb = budget
    with pytest.raises(TellkitError) as e:
        preflight(cfg, mixture, ref)
    msg = str(e.value)
    assert "same examples per optimizer step" in msg and "train.auto_fit=true" in msg
    first = msg.split("step: ", 1)[1].split(" (~")[0]  # e.g. "train.batch_size=2 train.grad_accum=4"
    fixed = cfg.model_copy(deep=True)
    for item in first.split():
        key, value = item.removeprefix("train.").split("=")
        setattr(fixed.train, key, value == "true" if value in ("true", "false") else int(value))
    assert fixed.train.batch_size * fixed.train.grad_accum == 8
    assert preflight(fixed, mixture, ref).memory.fits


def test_auto_fit_keeps_the_examples_per_optimizer_step(planned):
    cfg, mixture, ref = planned("train.batch_size=8", "train.grad_accum=2", "train.max_length=128",
                                "train.packing=false", "train.auto_fit=true")
    cfg.train.memory_budget_gb = _budget_between(cfg, mixture, ref, bs_fit=4)
    before = plan_training(cfg, mixture)
    pre = preflight(cfg, mixture, ref)
    t = pre.cfg.train
    assert t.batch_size < 8 and t.batch_size * t.grad_accum == 16 and not t.gradient_checkpointing
    assert pre.plan.examples_per_step == before.examples_per_step == 16
    assert pre.plan.optimizer_steps == before.optimizer_steps
    assert (pre.plan.tokens_per_step == before.tokens_per_step).all()  # the same examples in every step
    assert pre.memory.fits and "auto_fit: train.batch_size=" in pre.notes[0]
    assert cfg.train.batch_size == 8  # the user's config is left as it was
    assert training_hash(cfg) != training_hash(pre.cfg)  # (the run folder keeps the user's config)


def test_auto_fit_turns_on_checkpointing_when_splitting_is_not_enough(planned, monkeypatch):
    # a 30-layer model, where checkpointing pays (the tiny model's two layers keep little)
    monkeypatch.setattr(ModelShape, "load", classmethod(lambda cls, ref, **kw: SMOLLM2))
    cfg, mixture, ref = planned("train.batch_size=1", "train.auto_fit=true")
    shape = SMOLLM2
    tokens = plan_training(cfg, mixture).micro_tokens_max
    plain = estimate(shape, cfg, tokens, budget=(1e9, "", "cpu")).total_gib
    ckpt = estimate(shape, cfg, tokens, budget=(1e9, "", "cpu"), gradient_checkpointing=True).total_gib
    cfg.train.memory_budget_gb = (plain + ckpt) / 2
    pre = preflight(cfg, mixture, ref)
    assert pre.cfg.train.gradient_checkpointing and pre.cfg.train.batch_size == 1


def test_memory_settings_do_not_change_the_training_hash(config_file):
    base = load(config_file)
    other = load(config_file, ["train.auto_fit=true", "train.memory_budget_gb=3", "train.gradient_checkpointing=true"])
    assert training_hash(base) == training_hash(other)


def test_report_lines_show_the_plan_and_the_memory(planned):
    from tellkit.train.memory import report_lines

    cfg, mixture, ref = planned("train.memory_budget_gb=50")
    summary = preflight(cfg, mixture, ref).summary()
    lines = "\n".join(report_lines(summary))
    assert f"| {summary['plan']['optimizer_steps']} | {summary['plan']['examples_per_step']} (" in lines
    assert "Memory plan: ~" in lines and "budget 50.0 GiB (train.memory_budget_gb)" in lines


def test_bf16_has_its_own_factors_and_counts_autocast_weight_copies(planned, monkeypatch):
    # Under bf16 autocast with fp32 weights the frozen linears' bf16 copies wait for the backward pass;
    # a precision/malloc pair with no measured factor borrows fp32's and says it is uncalibrated.
    from tellkit.train import memory

    cfg, _, _ = planned("train.memory_budget_gb=100", "train.bf16=true")
    fp32_cfg, _, _ = planned("train.memory_budget_gb=100", "train.bf16=false")
    monkeypatch.setattr("tellkit.allocator.kind", lambda: "system")
    bf16, fp32 = estimate(SMOLLM2, cfg, 4096), estimate(SMOLLM2, fp32_cfg, 4096)
    assert bf16.precision == "bf16" and fp32.precision == "fp32" and "weight_copies" not in fp32.parts_gib
    linears = 30 * (576 * 576 * 2 + 576 * 192 * 2 + 576 * 1536 * 3)  # SmolLM2's q/o, k/v, gate/up/down
    assert bf16.parts_gib["weight_copies"] == pytest.approx(linears * 2 / 2**30)
    assert bf16.summary()["error"] == "+0%..+28%"  # glibc + bf16 is measured: the sweep's range is printed
    monkeypatch.setattr("tellkit.allocator.kind", lambda: "mimalloc")
    assert estimate(SMOLLM2, cfg, 4096).summary()["error"] == "-8%..+6%"  # the default install's
    monkeypatch.setattr("tellkit.allocator.kind", lambda: "system")
    monkeypatch.setitem(memory.ACT_SCALE["bf16"], "system", None)
    borrowed = estimate(SMOLLM2, cfg, 4096)
    assert borrowed.summary()["error"] == "uncalibrated" and "uncalibrated" in "\n".join(
        memory.preflight_lines({"plan": _plan_summary(planned), "memory": borrowed.summary(), "notes": []}))
    assert borrowed.parts_gib["activations"] == pytest.approx(fp32.parts_gib["activations"] / 2, rel=0.01)


def _plan_summary(planned):
    cfg, mixture, _ = planned()
    return plan_training(cfg, mixture).summary()
