"""Multi-process training: 2 ranks (DDP, gloo on CPU) x batch 2 == 1 process x batch 4.

The mixture order is one global order; every rank reads a disjoint slice of it
(accelerate's BatchSamplerShard over our SequentialSampler) and transformers
normalises the loss by the supervised tokens of the whole global batch
(average_tokens_across_devices), so the per-step losses match one process at
the same global batch up to float summation order.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from torch.utils.data import DataLoader, SequentialSampler

from tests.helpers import general_rows, task_rows, write_jsonl

# Measured on a 2-core CPU: max |loss(2 ranks) - loss(1 process)| = 9.5e-7 over 19 steps
# (identical data per step; only the order of float32 sums differs: per-rank partial
# losses + gloo all-reduce of the gradients). 1e-4 leaves room for other BLAS builds and
# thread counts while still failing loudly if a rank saw other rows (differences ~1e-2).
LOSS_TOL = 1e-4
LAUNCH_TIMEOUT = 180


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_model) -> tuple[Path, dict]:
    """Config + data in a folder, and the environment for the launched processes."""
    d = tmp_path_factory.mktemp("dist")
    write_jsonl(d / "task.jsonl", task_rows(24))
    write_jsonl(d / "general.jsonl", general_rows(600))
    cfg = {
        "model": {"name": str(tiny_model)},
        "task": {"path": "task.jsonl"}, "general": {"path": "general.jsonl"},
        "anchor": {"text": "ANCHOR: colour task."}, "mix": {"method": "tell", "ratio": 3, "seed": 0},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "train": {"epochs": 1, "lr": 3e-3, "batch_size": 4, "grad_accum": 1, "max_length": 128,
                  "save_steps": 10, "logging_steps": 1, "bf16": False},
        "output": {"dir": "run"},
    }
    (d / "cfg.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    env = {**os.environ, "TELLKIT_CACHE": str(d / "cache"), "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    return d, env


def _launch(launcher: list[str], d: Path, env: dict, out: str, *overrides: str) -> dict:
    cmd = [*launcher, "-m", "tellkit.cli", "train", str(d / "cfg.yaml"), f"output.dir={out}", *overrides]
    p = subprocess.run(cmd, cwd=d, env=env, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT)
    assert p.returncode == 0, f"{' '.join(cmd)} failed:\n{p.stdout[-3000:]}\n{p.stderr[-6000:]}"
    run = d / out
    return {"dir": run, "state": json.loads((run / "run.json").read_text()),
            "losses": json.loads((run / "loss_log.json").read_text()), "stdout": p.stdout}


@pytest.fixture(scope="module")
def single(setup) -> dict:
    """The reference: one process, batch 4, run in this process (also warms the tokenization cache)."""
    from tellkit.cli import main

    d, env = setup
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TELLKIT_CACHE", env["TELLKIT_CACHE"])
        assert main(["train", str(d / "cfg.yaml"), "output.dir=single"]) == 0
    run = d / "single"
    return {"dir": run, "state": json.loads((run / "run.json").read_text()),
            "losses": json.loads((run / "loss_log.json").read_text())}


def _assert_same_training(multi: dict, single: dict) -> None:
    s, m = single["state"]["train"], multi["state"]["train"]
    assert s["world_size"] == 1 and m["world_size"] == 2
    examples = multi["state"]["mixture"]["total"]["examples"]
    assert examples % 4 == 0  # no ragged last batch: every step is comparable
    # Same number of optimizer steps over the same examples => each rank did half of every global batch.
    assert m["optimizer_steps"] == s["optimizer_steps"] == examples // 4
    assert m["examples_per_step"] == s["examples_per_step"] == 4
    assert m["micro_batches"] == s["micro_batches"] * 2  # micro-batches of 2 examples instead of 4
    assert m["train_tokens"] == s["train_tokens"] == multi["state"]["mixture"]["total"]["tokens"]
    assert [r["step"] for r in multi["losses"]] == [r["step"] for r in single["losses"]]
    assert [r["tokens"] for r in multi["losses"]] == [r["tokens"] for r in single["losses"]]
    diffs = [abs(a["loss"] - b["loss"]) for a, b in zip(multi["losses"], single["losses"])]
    assert max(diffs) < LOSS_TOL, diffs
    # Rank 0 alone wrote the run folder: one complete record, the adapter, no leftovers.
    assert multi["state"]["status"] == "complete" and multi["state"]["resumed"] is False
    assert (multi["dir"] / "adapter" / "adapter_model.safetensors").exists()
    assert not list(multi["dir"].glob("*.tmp*")) and not list(multi["dir"].glob(".*"))
    assert (multi["dir"] / "mixture.json").exists()
    ckpt = sorted((multi["dir"] / "checkpoints").glob("checkpoint-*"))[-1]
    assert {p.name for p in ckpt.glob("rng_state_*.pth")} == {"rng_state_0.pth", "rng_state_1.pth"}


def test_torchrun_two_ranks_match_one_process(setup, single):
    d, env = setup
    multi = _launch([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"],
                    d, env, "torchrun", "train.batch_size=2")
    _assert_same_training(multi, single)


def test_accelerate_launch_two_ranks_match_one_process(setup, single):
    # `--multi_gpu` picks accelerate's torchrun-based launcher; on a CPU-only machine the
    # processes then use gloo. (`--cpu --num_processes 2` would start ONE process unless an
    # MPI hostfile is configured.)
    d, env = setup
    multi = _launch([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                     "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"],
                    d, env, "accelerate", "train.batch_size=2")
    _assert_same_training(multi, single)


@pytest.mark.parametrize("n_rows,batch_size,grad_accum", [(16, 2, 1), (11, 2, 1), (13, 2, 2), (7, 3, 1)])
def test_ranks_read_disjoint_slices_of_the_one_order(n_rows, batch_size, grad_accum):
    """What the Trainer does with the planned micro-batches under DDP: accelerate shards them (one item
    each) across ranks; a global step is a contiguous run of the one order, topped up from the epoch
    start, which is what the plan's token accounting assumes."""
    from accelerate.data_loader import prepare_data_loader

    from tellkit.train.plan import epoch_positions, micro_batches

    world = 2
    items = micro_batches(n_rows, batch_size, world)
    per_rank = []
    for rank in range(world):
        dl = DataLoader(items, batch_size=1, sampler=SequentialSampler(items), collate_fn=lambda b: b[0])
        per_rank.append(list(prepare_data_loader(dl, num_processes=world, process_index=rank, put_on_device=False)))
    n_micro = len(per_rank[0])
    assert all(len(b) == n_micro for b in per_rank)  # every rank takes the same steps
    steps = [sorted(i for r in range(world) for b in per_rank[r][k:k + grad_accum] for i in b)
             for k in range(0, n_micro, grad_accum)]
    per_step = batch_size * grad_accum * world
    order = epoch_positions(n_rows, batch_size, world)
    assert steps == [sorted(order[k:k + per_step].tolist()) for k in range(0, len(order), per_step)]
    rank_rows = [{i for b in per_rank[r] for i in b} for r in range(world)]
    if len(order) == n_rows:
        assert not rank_rows[0] & rank_rows[1] and rank_rows[0] | rank_rows[1] == set(range(n_rows))


def test_only_rank_zero_writes_the_run_folder(config_file, monkeypatch):
    """A rank > 0 trains but never claims, writes mixture files into, or completes the run folder."""
    import tellkit.train.trainer as trainer
    from tellkit import api

    monkeypatch.setattr(trainer, "train_mixture", lambda *a, **k: {"stub": True})
    monkeypatch.setenv("RANK", "1")
    out = api.train(api.load(config_file))
    assert not out.exists() or not any(out.iterdir())
    monkeypatch.setenv("RANK", "0")
    out = api.train(api.load(config_file))
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    assert (out / "mixture.jsonl").exists()
