"""The step plan: the same optimizer steps with packing on and off, the Trainer's exact schedule,
micro-batches that match the plan, and warnings that say what to change."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from transformers import get_scheduler

from tellkit.api import load
from tellkit.cli import main
from tellkit.mix.prepare import mix, prepare
from tellkit.train.plan import MIN_STEPS, example_lengths, micro_batches, plan_training


@pytest.fixture
def mixture_of(config_file):
    """(cfg, mixture) for the test config with overrides; the tokenizer and data load once per test."""
    cache = {}

    def build(*overrides):
        cfg = load(config_file, list(overrides))
        p = cache.setdefault("p", prepare(cfg))
        p.cfg = cfg
        return cfg, mix(cfg, prepared=p)

    return build


def test_step_count_is_the_same_with_packing_on_and_off(mixture_of):
    for epochs, bs in ((1, 4), (2, 8), (3, 3)):
        on = plan_training(*mixture_of(f"train.epochs={epochs}", f"train.batch_size={bs}", "train.packing=true"))
        off = plan_training(*mixture_of(f"train.epochs={epochs}", f"train.batch_size={bs}", "train.packing=false"))
        assert on.optimizer_steps == off.optimizer_steps == math.ceil(math.ceil(on.examples / bs) * epochs)
        assert np.array_equal(on.tokens_per_step, off.tokens_per_step)  # the same examples in each step
        assert off.micro_tokens_max >= on.micro_tokens_max  # padding costs slots, packing does not
        assert on.epochs == pytest.approx(epochs)


def test_tokens_per_step_are_the_examples_of_each_step(mixture_of):
    cfg, mixture = mixture_of("train.batch_size=3", "train.grad_accum=2", "train.epochs=2")
    plan = plan_training(cfg, mixture)
    lengths = example_lengths(mixture)
    assert len(lengths) == len(mixture.dataset())
    assert np.array_equal(lengths, np.asarray(mixture.dataset()["n_tokens"]))  # mixture (training) order
    assert plan.examples_per_step == 6 and plan.optimizer_steps == 2 * math.ceil(len(lengths) / 6)
    assert plan.train_tokens == 2 * lengths.sum()  # two epochs, every example once per epoch
    assert plan.tokens_per_step[0] == lengths[:6].sum()
    groups = micro_batches(len(lengths), 3)
    assert [i for g in groups for i in g] == list(range(len(lengths)))  # consecutive, each example once
    first_step = [i for g in groups[:2] for i in g]  # grad_accum=2 micro-batches make one optimizer step
    assert plan.tokens_per_step[0] == lengths[first_step].sum()
    assert plan.micro_tokens_max == max(int(lengths[g].sum()) for g in groups)  # packed: the examples' sum


def test_under_ddp_the_last_global_batch_wraps_to_the_start(mixture_of):
    cfg, mixture = mixture_of("train.batch_size=4")
    n = len(mixture.order)
    plan = plan_training(cfg, mixture, world_size=2)
    groups = micro_batches(n, 4, world_size=2)
    assert len(groups) % 2 == 0 and all(len(g) == 4 for g in groups)  # every rank steps alike
    flat = [i for g in groups for i in g]
    assert flat[:n] == list(range(n)) and flat[n:] == list(range(len(flat) - n))  # accelerate's even_batches
    assert plan.optimizer_steps == math.ceil(n / 8) and plan.examples_per_step == 8


def test_max_steps_overrides_epochs_and_repeats_the_order(mixture_of):
    cfg, mixture = mixture_of("train.max_steps=50", "train.batch_size=8")
    plan = plan_training(cfg, mixture)
    per_epoch = plan.steps_per_epoch
    assert plan.optimizer_steps == 50 and len(plan.tokens_per_step) == 50
    assert np.array_equal(plan.tokens_per_step[per_epoch:2 * per_epoch], plan.tokens_per_step[:per_epoch])
    assert plan.epochs == pytest.approx(50 / per_epoch)


@pytest.mark.parametrize("scheduler", ["cosine", "linear", "constant_with_warmup"])
def test_mean_lr_is_the_trainers_schedule(mixture_of, scheduler):
    cfg, mixture = mixture_of(f"train.scheduler={scheduler}", "train.warmup_ratio=0.1", "train.lr=1e-3",
                              "train.max_steps=40")
    plan = plan_training(cfg, mixture)
    assert plan.warmup_steps == 4
    # what the HF Trainer does: optimizer.step() at the current lr, then scheduler.step()
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    sched = get_scheduler(scheduler, opt, num_warmup_steps=4, num_training_steps=40)
    used = []
    for _ in range(40):
        used.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert plan.mean_lr == pytest.approx(np.mean(used), rel=1e-9)
    assert plan.mean_lr < 1e-3


def test_small_plan_warns_and_its_advice_works(mixture_of):
    cfg, mixture = mixture_of("train.batch_size=8")
    plan = plan_training(cfg, mixture)
    assert plan.optimizer_steps < MIN_STEPS
    (steps_warning,) = [w for w in plan.warnings if "optimizer steps" in w]
    advice = [w for w in steps_warning.split("set ", 1)[1].split(" or ")]
    assert any(a.startswith("train.epochs=") for a in advice) and any("train.batch_size=" in a for a in advice)
    for a in advice:  # every suggested override gives enough steps
        fixed = plan_training(*mixture_of("train.batch_size=8", *a.split()))
        assert fixed.optimizer_steps >= MIN_STEPS, a
        assert not [w for w in fixed.warnings if "optimizer steps" in w]


def test_too_few_passes_over_a_small_task_set_warns(mixture_of):
    cfg, mixture = mixture_of("train.batch_size=1")  # plenty of steps, one pass over 24 task examples
    plan = plan_training(cfg, mixture)
    assert plan.optimizer_steps >= MIN_STEPS and plan.task_epochs == pytest.approx(1.0)
    (w,) = plan.warnings
    assert "24 task examples" in w and "train.epochs=2" in w
    assert plan_training(*mixture_of("train.batch_size=1", "train.epochs=2")).warnings == []


def test_validate_prints_the_plan(config_file, capsys):
    assert main(["validate", str(config_file), "train.epochs=3", "train.batch_size=2"]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out[: out.rindex("}") + 1])
    plan = summary["training"]["plan"]
    assert plan["examples_per_step"] == 2 and plan["optimizer_steps"] == 3 * math.ceil(plan["examples"] / 2)
    assert f"plan: {plan['optimizer_steps']} optimizer steps x 2 examples" in out
    assert "mean lr" in out and "memory: ~" in out


def test_steps_that_end_before_any_task_example_ask_for_passes_over_the_mixture(mixture_of):
    cfg, mixture = mixture_of("train.max_steps=1", "train.batch_size=1", "mix.ratio=10")
    assert mixture.order[0, 0] != 0  # seed 0: the mixture starts with a general example, so the step has no task
    plan = plan_training(cfg, mixture)
    assert plan.task_epochs == 0
    fix = f"train.max_steps={math.ceil(2 * plan.steps_per_epoch)}"
    assert any(fix in w for w in plan.warnings), plan.warnings
    assert all("e+" not in w and len(w) < 400 for w in plan.warnings)
