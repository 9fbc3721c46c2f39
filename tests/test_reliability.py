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
    # --overwrite never deletes, or writes into, a folder that is not a tellkit run
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(TellkitError, match="is not a tellkit run"):
        RunDir(mine).begin(cfg, overwrite=True)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"] and (mine / "notes.txt").read_text() == "keep"


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


# ------------------------------------------------------------------ never delete what tellkit did not write
# (issue 26: --overwrite and a failed run's restart used to rmtree any folder whose run.json parsed)


def _user_project(folder: Path, run_json: str) -> dict[str, str]:
    """A folder of the user's: their own run.json, notes and code. Returns {relative path: content}."""
    files = {"run.json": run_json, "NOTES.md": "my notes", "src/main.py": "print('mine')\n"}
    for rel, text in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    return files


def _unchanged(folder: Path, files: dict[str, str]) -> bool:
    present = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    return present == sorted(files) and all((folder / rel).read_text() == text for rel, text in files.items())


def test_overwrite_refuses_a_folder_whose_run_json_tellkit_did_not_write(config_file, capsys):
    project = config_file.parent / "myproject"
    files = _user_project(project, '{"name": "x"}')
    user_error(["train", str(config_file), "output.dir=myproject", "--overwrite"], capsys,
               str(project), "did not write", "choose another output.dir")
    assert _unchanged(project, files)


def test_a_failed_looking_run_json_of_the_users_is_not_restarted(config_file, capsys):
    project = config_file.parent / "myproject"
    files = _user_project(project, '{"status": "failed"}')
    user_error(["train", str(config_file), "output.dir=myproject"], capsys, str(project), "did not write")
    assert _unchanged(project, files)


def test_restarting_a_run_removes_only_what_tellkit_wrote(config_file):
    cfg = load_config(config_file)
    run = RunDir(cfg.output.dir)
    run.begin(cfg)
    for name in ("adapter", "checkpoints/checkpoint-2", "eval"):
        (run.path / name).mkdir(parents=True)
    (run.path / "loss_log.json").write_text("[]")
    (run.path / ".mixture.jsonl.k1ll3dxx.tmp.jsonl").write_text("debris of a killed write")
    (run.path / "NOTES.md").write_text("mine")  # the user's, inside a real run folder
    (run.path / "analysis").mkdir()
    (run.path / "analysis" / "plot.py").write_text("mine")
    run.complete()
    other = load_config(config_file, ["train.lr=0.5"])
    RunDir(other.output.dir).begin(other, overwrite=True)
    left = sorted(p.name for p in run.path.iterdir())
    assert left == ["NOTES.md", "analysis", "config.yaml", "run.json"]
    assert (run.path / "analysis" / "plot.py").read_text() == "mine"
    state = json.loads((run.path / "run.json").read_text())
    assert state["tellkit"] == {"run_format": 1} and state["status"] == "running"


def test_a_run_folder_from_before_the_marker_is_restarted_only_when_it_holds_nothing_else(config_file):
    cfg = load_config(config_file)
    legacy = {"status": "complete", "training_hash": "0123456789abcdef", "versions": {"tellkit": "0.1"}}
    run = RunDir(cfg.output.dir)
    run.path.mkdir()
    (run.path / "run.json").write_text(json.dumps(legacy))
    (run.path / "adapter").mkdir()
    (run.path / "NOTES.md").write_text("mine")
    assert run.require_complete()["status"] == "complete"  # still readable as a finished run
    with pytest.raises(TellkitError, match=r"older tellkit and also holds NOTES.md"):
        run.begin(cfg, overwrite=True)
    assert (run.path / "NOTES.md").exists() and (run.path / "adapter").is_dir()
    (run.path / "NOTES.md").unlink()
    run.begin(cfg, overwrite=True)
    assert not (run.path / "adapter").exists()
    assert json.loads((run.path / "run.json").read_text())["tellkit"] == {"run_format": 1}


def test_report_writes_only_into_tellkit_folders(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "report.md").write_text("# my own report\n")
    user_error(["report", "notes"], capsys, "notes", "not a tellkit run, compare or sweep folder")
    assert [p.name for p in notes.iterdir()] == ["report.md"]
    assert (notes / "report.md").read_text() == "# my own report\n"
    (notes / "plan.json").write_text('{"todo": ["buy milk"]}')  # a plan.json of the user's is not a sweep's
    user_error(["report", "notes"], capsys, "not a tellkit run, compare or sweep folder")
    user_error(["report", "does_not_exist"], capsys, "does_not_exist", "no such folder")
    assert not (tmp_path / "does_not_exist").exists()


def test_compare_and_sweep_refuse_a_folder_of_the_users(config_file, capsys):
    project = config_file.parent / "myproject"
    files = _user_project(project, '{"name": "x"}')
    (project / "report.md").write_text("mine")
    files["report.md"] = "mine"
    for command in ("compare", "sweep"):
        user_error([command, str(config_file), "output.dir=myproject"], capsys, str(project),
                   f"not a tellkit {command} folder")
    assert _unchanged(project, files)


# ------------------------------------------------------------------ every number range-checked, 0 is never "default"


@pytest.mark.parametrize("argv, option", [
    (["eval", "RUN", "--limit", "-1"], "--limit"),
    (["eval", "RUN", "--limit", "0"], "--limit"),
    (["predict", "RUN", "--input", "x.jsonl", "--batch-size", "0"], "--batch-size"),
    (["predict", "RUN", "--input", "x.jsonl", "--max-new-tokens", "-5"], "--max-new-tokens"),
    (["chat", "RUN", "--max-new-tokens", "0"], "--max-new-tokens"),
    (["compare", "cfg.yaml", "--workers", "0"], "--workers"),
    (["sweep", "cfg.yaml", "--cell-cpus", "-2"], "--cell-cpus"),
    (["anchor", "draft", "cfg.yaml", "--n", "0"], "--n"),
    (["anchor", "draft", "cfg.yaml", "--seed", "-1"], "--seed"),
])
def test_cli_numbers_are_range_checked(argv, option, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert f"argument {option}:" in capsys.readouterr().err


def test_api_counts_of_zero_are_errors_not_defaults(config_file, tmp_path):
    from tellkit.api import chat, predict
    from tellkit.errors import ConfigError
    from tellkit.evaluate.runner import evaluate

    cfg = load_config(config_file)
    with pytest.raises(ConfigError, match="--limit must be a whole number of at least 1"):
        evaluate(cfg, adapter=None, anchor=None, out_dir=tmp_path / "scores", limit=0)
    with pytest.raises(ConfigError, match="--batch-size"):
        predict(tmp_path, "-", batch_size=0)
    with pytest.raises(ConfigError, match="--max-new-tokens"):
        predict(tmp_path, "-", max_new_tokens=-5)
    with pytest.raises(ConfigError, match="--max-new-tokens"):
        chat(tmp_path, max_new_tokens=0)
    assert not (tmp_path / "scores").exists()


# ------------------------------------------------------------------ one `error:` line, not a traceback


@pytest.mark.parametrize("overrides, expected", [
    (["train.epochs=.inf", "train.max_steps="], "train.epochs=inf: Input should be a finite number"),
    (["train.lr=.inf"], "train.lr=inf: Input should be a finite number"),
    (["mix.seed=-1"], "mix.seed=-1: Input should be greater than or equal to 0"),
    (["train.seed=-1"], "train.seed=-1"),
    (["train.seed=4294967296"], "train.seed=4294967296"),
    (["compare.seeds=[0, -1]"], "compare.seeds[1]=-1"),
    (["sweep.ratios=[-1, 10]"], "sweep.ratios[0]=-1: Input should be greater than or equal to 0"),
])
def test_out_of_range_settings_fail_at_load(config_file, capsys, overrides, expected):
    user_error(["validate", str(config_file), *overrides], capsys, "cfg.yaml:", expected)


def test_validate_checks_lora_target_modules_against_the_model(config_file, capsys):
    user_error(["validate", str(config_file), "lora.target_modules=[q_proj, nonexistent_proj]"], capsys,
               "lora.target_modules: 'nonexistent_proj' matches no layer", "q_proj", "all-linear")
    user_error(["train", str(config_file), "lora.target_modules=nonexistent_proj"], capsys,
               "lora.target_modules: 'nonexistent_proj' matches no layer")
    assert not (config_file.parent / "run").exists()  # refused before the folder was claimed
    assert main(["validate", str(config_file), "lora.target_modules=[q_proj, v_proj]"]) == 0


def test_validate_checks_the_json_schema_file(config_file, capsys):
    (config_file.parent / "schema.json").write_text('{"type": 12}')
    user_error(["validate", str(config_file), "eval.json_schema=schema.json"], capsys,
               "eval.json_schema=", "schema.json", "is not a valid JSON Schema")
    (config_file.parent / "schema.json").write_text('{"type": "object"')
    user_error(["validate", str(config_file), "eval.json_schema=schema.json"], capsys, "not valid UTF-8 JSON")


def test_the_error_line_never_shares_a_line_with_a_progress_bar(config_file, capsys):
    rows = [json.loads(line) for line in (config_file.parent / "task.jsonl").read_text().splitlines()]
    rows[20] = {"id": "bad", "prompt": "no completion"}  # found while the tokenize bar is drawn
    (config_file.parent / "task.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["validate", str(config_file)]) == 2
    raw = capsys.readouterr().err
    assert "tokenize task" in raw  # the bar was drawn...
    assert raw.endswith("\n") and raw.split("\n")[-2].startswith("error: ")  # ...and `tail -1` sees the error


def test_overrides_may_come_after_options(config_file, capsys):
    user_error(["validate", str(config_file), "--overwrite", "train.lr=-1"], capsys, "train.lr=-1")
    with pytest.raises(SystemExit):
        main(["validate", str(config_file), "--overwrite", "--nonsense"])
    assert "unrecognized arguments: --nonsense" in capsys.readouterr().err


def test_a_sweep_budget_that_excludes_every_cell_writes_nothing(config_file, capsys):
    user_error(["sweep", str(config_file), "sweep.max_train_tokens=1", "sweep.ratios=[0, 1]",
                "sweep.task_tokens=[100]", "sweep.seeds=[0]"], capsys,
               "sweep.max_train_tokens=1 leaves out every cell", "raise it or remove it")
    assert not (config_file.parent / "run").exists()


def test_compare_checks_its_options_before_writing_a_plan(config_file):
    from tellkit.errors import ConfigError
    from tellkit.study.compare import compare

    with pytest.raises(ConfigError, match="--workers"):
        compare(load_config(config_file), workers=0)
    assert not (config_file.parent / "run").exists()


def test_a_new_adapter_is_swapped_in_the_old_one_is_never_deleted_first(tmp_path, monkeypatch):
    from tellkit.train import trainer

    dest = tmp_path / "adapter"
    dest.mkdir()
    (dest / "adapter_model.safetensors").write_text("old")

    class FakeTrainer:  # what _save_adapter uses of the HF Trainer
        def is_world_process_zero(self):
            return True

        def save_model(self, path):
            Path(path).mkdir(parents=True, exist_ok=True)
            (Path(path) / "adapter_model.safetensors").write_text("new")
            (Path(path) / "training_args.bin").write_text("a pickle")

    class FakeTokenizer:
        def save_pretrained(self, path):
            (Path(path) / "tokenizer.json").write_text("{}")

    real, after = shutil.rmtree, []

    def rmtree(path, *args, **kwargs):
        real(path, *args, **kwargs)
        after.append(dest.is_dir())  # is there an adapter once something was deleted?

    monkeypatch.setattr(shutil, "rmtree", rmtree)
    trainer._save_adapter(FakeTrainer(), FakeTokenizer(), dest)
    assert all(after)
    assert sorted(p.name for p in dest.iterdir()) == ["adapter_model.safetensors", "tokenizer.json"]
    assert (dest / "adapter_model.safetensors").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]


def test_base_scores_never_go_into_a_folder_of_the_users(config_file, capsys):
    base = config_file.parent / "run-base"  # where `tellkit eval CONFIG --base` writes
    base.mkdir()
    (base / "NOTES.md").write_text("mine")
    user_error(["eval", str(config_file), "--base"], capsys, str(base), "NOTES.md", "did not write")
    assert [p.name for p in base.iterdir()] == ["NOTES.md"]
