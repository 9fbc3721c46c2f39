"""Never lose or fake a result; determinism; safe defaults.

The kill -9 / resume test lives in tests/test_resume.py.
"""

from __future__ import annotations

import ast
import json
import math
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import TrainerControl, TrainerState, TrainingArguments

import tellkit
from tellkit.cli import main
from tellkit.config import Config, load_config
from tellkit.errors import TellkitError
from tellkit.runs.rundir import RunDir, checkpoint_complete, last_checkpoint
from tellkit.train.callbacks import LossLog

from tests.helpers import user_error, visible_lines


@pytest.fixture(autouse=True)
def one_thread():
    """The tiny model trains fastest on one thread (results are bit-identical either way)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def steps_of(folder: Path) -> list[int]:
    return sorted(int(p.name.rsplit("-", 1)[1]) for p in (folder / "checkpoints").glob("checkpoint-*"))


# ------------------------------------------------------------------ NaN guard, failed runs


def test_nan_loss_stops_training_keeps_last_good_checkpoint_and_marks_run_failed(config_file, capsys, monkeypatch):
    """A non-finite loss from step 4 on: training stops at step 4, checkpoint-4 is never written,
    run.json says failed with the reason, and the run is refused as a result."""
    from tellkit.train import trainer

    original = trainer.MixtureTrainer.compute_loss

    def nan_from_step_4(self, model, inputs, return_outputs=False, **kw):
        out = original(self, model, inputs, return_outputs=return_outputs, **kw)
        if self.state.global_step < 3:  # global_step counts finished steps: step 4 is the first bad one
            return out
        return (out[0] * math.nan, out[1]) if return_outputs else out * math.nan

    monkeypatch.setattr(trainer.MixtureTrainer, "compute_loss", nan_from_step_4)
    # logging_steps=3 does not divide save_steps=2: the guard must still see step 4 before its save
    rc = main(["train", str(config_file), "train.max_steps=8", "train.save_steps=2", "train.logging_steps=3"])
    lines = visible_lines(capsys.readouterr().err)
    run = config_file.parent / "run"
    assert rc == 2
    assert lines[-1].startswith("error: training loss became NaN/inf at step 4")
    assert "train.lr" in lines[-1] and "checkpoint-2" in lines[-1]

    assert steps_of(run) == [2]  # nothing saved at or after the bad step
    assert checkpoint_complete(run / "checkpoints" / "checkpoint-2")
    log = json.loads((run / "loss_log.json").read_text())
    assert log and max(r["step"] for r in log) < 4
    assert all(math.isfinite(r["loss"]) and math.isfinite(r["grad_norm"]) for r in log)
    assert not (run / "adapter").exists()

    state = json.loads((run / "run.json").read_text())
    assert state["status"] == "failed" and "NaN/inf at step 4" in state["reason"]
    with pytest.raises(TellkitError, match=r"is failed: .*NaN/inf at step 4"):
        RunDir(run).require_complete()


def test_guard_checks_every_save_step_and_the_gradient_norm(tmp_path):
    """HF's logging_nan_inf_filter turns a NaN step loss into a finite average; the grad norm still shows it."""
    guard = LossLog(tmp_path / "loss_log.json", tokens_per_step=[10] * 10)
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none")
    state, control = TrainerState(), TrainerControl()
    state.global_step = 2
    control.should_save = True
    guard.on_step_end(args, state, control)
    assert control.should_log  # a save step is always logged (and so checked) first

    guard.on_log(args, state, control, logs={"loss": 1.5, "grad_norm": 0.3, "learning_rate": 1e-3})
    assert control.should_save and guard.bad_step is None and len(guard.records) == 1
    state.global_step = 3
    guard.on_log(args, state, control, logs={"loss": 0.0, "grad_norm": math.nan, "learning_rate": 1e-3})
    assert guard.bad_step == 3 and "grad_norm=nan" in guard.bad_reason
    assert control.should_training_stop and not control.should_save
    assert [r["step"] for r in json.loads((tmp_path / "loss_log.json").read_text())] == [2]


def test_incomplete_runs_are_refused_as_results(config_file):
    cfg = load_config(config_file)
    run = RunDir(cfg.output.dir)
    with pytest.raises(TellkitError, match="not a tellkit run folder"):
        run.require_complete()
    run.begin(cfg)  # what a kill -9 leaves behind: status running, forever
    with pytest.raises(TellkitError, match="is running"):
        run.require_complete()
    run.fail("ValueError: boom")
    with pytest.raises(TellkitError, match="is failed: ValueError: boom"):
        run.require_complete()
    run.complete()
    assert run.require_complete()["status"] == "complete"


def test_a_failed_run_with_results_still_protects_its_folder(config_file):
    cfg = load_config(config_file)
    run = RunDir(cfg.output.dir)
    run.begin(cfg)
    (run.path / "checkpoints" / "checkpoint-5").mkdir(parents=True)
    run.fail("killed")
    other = load_config(config_file, ["train.lr=0.5"])
    with pytest.raises(TellkitError, match="holds another run"):
        RunDir(other.output.dir).begin(other)
    assert run.begin(cfg) is False  # the same config may resume it (checkpoint-5 is incomplete: none to resume)
    assert not (run.path / "checkpoints" / "checkpoint-5").exists()


def test_resume_and_overwrite_flags(config_file, tmp_path):
    cfg = load_config(config_file)
    run = RunDir(cfg.output.dir)
    with pytest.raises(TellkitError, match="no interrupted run"):
        run.begin(cfg, resume=True)
    with pytest.raises(TellkitError, match="pass only one"):
        run.begin(cfg, overwrite=True, resume=True)
    # --overwrite never deletes a folder that is not a tellkit run
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    RunDir(mine).begin(cfg, overwrite=True)
    assert (mine / "notes.txt").read_text() == "keep"


def test_last_checkpoint_skips_a_half_written_one(tmp_path):
    root = tmp_path / "checkpoints"

    def checkpoint(step: int, files: dict[str, str]) -> Path:
        folder = root / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        for name, text in files.items():
            (folder / name).write_text(text)
        return folder

    full = {"adapter_model.safetensors": "w", "optimizer.pt": "o", "scheduler.pt": "s", "rng_state.pth": "r"}
    good = checkpoint(4, {**full, "trainer_state.json": json.dumps({"global_step": 4})})
    checkpoint(8, {**full, "trainer_state.json": '{"global_step": 8, "log_hist'})  # killed while writing it
    checkpoint(12, {"adapter_model.safetensors": "w"})  # killed before the optimizer state
    checkpoint(16, {})
    assert not checkpoint_complete(root / "checkpoint-8")
    assert last_checkpoint(root) == str(good)
    assert len(list(root.iterdir())) == 4  # looking does not delete
    assert last_checkpoint(root, prune=True) == str(good)
    assert [p.name for p in root.iterdir()] == ["checkpoint-4"]
    assert last_checkpoint(tmp_path / "nothing") is None


# ------------------------------------------------------------------ determinism


def test_same_config_and_seed_give_the_same_mixture_losses_and_adapter(config_file):
    args = ["train", str(config_file), "train.max_steps=8", "train.save_steps=4"]
    assert main([*args, "output.dir=a"]) == 0
    assert main([*args, "output.dir=b"]) == 0
    a, b = config_file.parent / "a", config_file.parent / "b"
    assert json.loads((a / "mixture.json").read_text())["fingerprint"] == \
        json.loads((b / "mixture.json").read_text())["fingerprint"]
    assert (a / "mixture.jsonl").read_bytes() == (b / "mixture.jsonl").read_bytes()
    la, lb = (json.loads((d / "loss_log.json").read_text()) for d in (a, b))
    assert [r["step"] for r in la] == list(range(1, 9))
    assert max(abs(x["loss"] - y["loss"]) for x, y in zip(la, lb, strict=True)) <= 1e-6
    wa, wb = (load_file(d / "adapter" / "adapter_model.safetensors") for d in (a, b))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


# ------------------------------------------------------------------ safe by default


def test_safe_defaults():
    m = Config.model_validate({"task": {"path": "t.jsonl"}, "general": {"path": "g.jsonl"}}).model
    assert m.trust_remote_code is False and m.allow_pickle is False


def test_yaml_python_tag_is_a_user_error(config_file, tmp_path, capsys):
    marker = tmp_path / "pwned"
    config_file.write_text(config_file.read_text() + f'x: !!python/object/apply:os.system ["touch {marker}"]\n')
    user_error(["validate", str(config_file)], capsys, "cfg.yaml:", "YAML tag not allowed")
    assert not marker.exists()


def test_relative_paths_resolve_against_the_config_folder(config_file, tiny_model, tmp_path, monkeypatch, capsys):
    shutil.copytree(tiny_model, config_file.parent / "model")
    cfg = yaml.safe_load(config_file.read_text())
    cfg["model"]["name"] = "model"  # a folder next to the config
    config_file.write_text(yaml.safe_dump(cfg))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["validate", str(config_file)]) == 0
    summary = capsys.readouterr().out
    assert f'"model": "{config_file.parent / "model"}"' in summary
    loaded = load_config(config_file)
    assert loaded.task.path == str(config_file.parent / "task.jsonl")
    assert loaded.output.dir == str(config_file.parent / "run")
    assert load_config(config_file, ["model.name=smollm2-135m-instruct"]).model.name == "smollm2-135m-instruct"
    assert load_config(config_file, ["model.name=org/name"]).model.name == "org/name"  # a hub id stays one


def test_pickled_weights_need_allow_pickle(config_file, tiny_model, tmp_path, capsys):
    pickled = tmp_path / "pickled-model"
    shutil.copytree(tiny_model, pickled, ignore=shutil.ignore_patterns("*.safetensors"))
    torch.save(load_file(tiny_model / "model.safetensors"), pickled / "pytorch_model.bin")
    user_error(["validate", str(config_file), f"model.name={pickled}"], capsys,
               str(pickled), "pytorch_model.bin", "model.allow_pickle: true")
    assert main(["validate", str(config_file), f"model.name={pickled}", "model.allow_pickle=true"]) == 0


def test_remote_code_needs_trust_remote_code(config_file, tiny_model, tmp_path, capsys):
    custom = tmp_path / "custom-model"
    shutil.copytree(tiny_model, custom)
    conf = json.loads((custom / "config.json").read_text())
    conf.update(model_type="my-own-arch", auto_map={"AutoModelForCausalLM": "modeling_mine.MyModel"})
    (custom / "config.json").write_text(json.dumps(conf))
    user_error(["validate", str(config_file), f"model.name={custom}"], capsys,
               str(custom), "model.trust_remote_code: true")


def test_adapters_and_checkpoints_are_safetensors(config_file):
    assert main(["train", str(config_file), "train.max_steps=2", "train.save_steps=2"]) == 0
    run = config_file.parent / "run"
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
    assert (run / "checkpoints" / "checkpoint-2" / "adapter_model.safetensors").is_file()
    assert not list(run.rglob("*.bin")) or [p.name for p in run.rglob("*.bin")] == ["training_args.bin"]


SHELL_CALLS = {("os", "system"), ("os", "popen"), ("os", "execv"), ("os", "execvp"), ("os", "spawnv"),
               ("pty", "spawn")}


# The one module that starts processes: parallel sweep cells, each `python -m tellkit.study.execute.cell
# FOLDER NAME` as an argv list (no shell); the cell reads its config from the plan file, not argv.
CELL_LAUNCHER = Path(tellkit.__file__).parent / "study" / "execute" / "local.py"


def test_no_config_value_reaches_a_shell():
    """No module runs a shell; only the cell launcher starts a subprocess, and only with the fixed
    argv of cell_command, so no config value can ever be passed to a shell or a command line."""
    offenders = []
    for path in sorted(Path(tellkit.__file__).parent.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
                if any(n and n.split(".")[0] in ("subprocess", "pty", "commands") for n in names) and (
                        path != CELL_LAUNCHER or names != ["subprocess"]):
                    offenders.append(f"{path}:{node.lineno} imports a process module")
            elif (path == CELL_LAUNCHER and isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and getattr(node.func.value, "id", None) == "subprocess" and node.func.attr in ("Popen", "run")
                  and not (node.args and isinstance(node.args[0], ast.Call)
                           and getattr(node.args[0].func, "id", None) == "cell_command")):
                offenders.append(f"{path}:{node.lineno} starts a process with another command than cell_command")
            elif isinstance(node, ast.Call):
                f = node.func
                named = isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name)
                target = (f.value.id, f.attr) if named else None
                if target in SHELL_CALLS:
                    offenders.append(f"{path}:{node.lineno} calls {f.value.id}.{f.attr}")
                if isinstance(f, ast.Name) and f.id in ("eval", "exec"):
                    offenders.append(f"{path}:{node.lineno} calls {f.id}()")
                if any(k.arg == "shell" for k in node.keywords):
                    offenders.append(f"{path}:{node.lineno} passes shell=")
    assert not offenders, offenders
