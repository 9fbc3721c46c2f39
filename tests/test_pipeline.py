"""Every user error is caught before any work: exit code 2, one `error:` line naming file:line or key.

Each case calls the real CLI (`tellkit.cli.main`) the way a user would.
HF_HUB_OFFLINE=1 comes from the autouse fixture in conftest.py.
"""

from __future__ import annotations

import json
import re
import shutil

import pytest
import yaml

from tellkit.cli import main
from tellkit.config import load_config
from tellkit.errors import DataError
from tellkit.runs.rundir import RunDir
from tests.helpers import user_error


def read_jsonl(path) -> list:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def write_jsonl(path, rows: list) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def validate(config_file, *overrides: str) -> list[str]:
    return ["validate", str(config_file), *overrides]


def set_yaml(config_file, section: str, key: str, value) -> None:
    cfg = yaml.safe_load(config_file.read_text())
    cfg.setdefault(section, {})[key] = value
    config_file.write_text(yaml.safe_dump(cfg))


# ------------------------------------------------------------------ the happy path


def test_valid_config_passes_and_writes_nothing(config_file, capsys):
    assert main(validate(config_file)) == 0
    out = capsys.readouterr().out
    assert "ok: config, data, model and ratio are valid" in out
    summary = json.loads(out[: out.rindex("}") + 1])
    assert summary["task_records"] == 24 and summary["general_records"] == 600 and summary["test_records"] == 8
    assert summary["mixture"]["requested_ratio"] == 3
    assert not (config_file.parent / "run").exists()  # validate never claims the output folder


# ------------------------------------------------------------------ data files


def test_malformed_jsonl_names_file_and_line(config_file, data_dir, capsys):
    lines = (data_dir / "task.jsonl").read_text().splitlines()
    lines[2] = lines[2][:-5]  # cut the closing of line 3
    (data_dir / "task.jsonl").write_text("\n".join(lines) + "\n")
    user_error(validate(config_file), capsys, "task.jsonl:3:", "invalid JSON")


def test_malformed_general_line_deep_in_the_file(config_file, data_dir, capsys):
    with open(data_dir / "general.jsonl", "a") as f:
        f.write('{"instruction": "x", "output": "y"\n')  # line 601: every line is checked
    user_error(validate(config_file), capsys, "general.jsonl:601:", "invalid JSON")


def test_malformed_json_array_names_file_and_line(config_file, data_dir, capsys):
    (data_dir / "task.json").write_text('[{"prompt": "a", "completion": "b"},\n {"prompt": }]\n')
    user_error(validate(config_file, "task.path=task.json"), capsys, "task.json:2:", "invalid JSON")


def test_line_that_is_not_an_object(config_file, data_dir, capsys):
    write_jsonl(data_dir / "task.jsonl", read_jsonl(data_dir / "task.jsonl")[:3] + ["just a string"])
    user_error(validate(config_file), capsys, "task.jsonl:4:", "expected a JSON object")


def test_missing_field_names_file_line_and_field(config_file, data_dir, capsys):
    rows = read_jsonl(data_dir / "task.jsonl")
    del rows[1]["completion"]
    write_jsonl(data_dir / "task.jsonl", rows)
    user_error(validate(config_file), capsys, "task.jsonl:2:", "completion", "columns:")


def test_wrong_field_type(config_file, data_dir, capsys):
    rows = read_jsonl(data_dir / "task.jsonl")
    rows[3]["completion"] = 42
    write_jsonl(data_dir / "task.jsonl", rows)
    user_error(validate(config_file), capsys, "task.jsonl:4:", "'completion' must be text, got int")


def test_unknown_record_format(config_file, data_dir, capsys):
    write_jsonl(data_dir / "task.jsonl", [{"question": "q", "answer": "a"}])
    user_error(validate(config_file), capsys, "task.jsonl:1:", "cannot tell the record format", "columns:")


def test_bad_conversation_turns(config_file, data_dir, capsys):
    write_jsonl(data_dir / "task.jsonl", [{"messages": [{"role": "user", "content": "hi"}]}])
    user_error(validate(config_file), capsys, "task.jsonl:1:", "last turn must be the assistant's")


@pytest.mark.parametrize("name", ["task.jsonl", "general.jsonl"])
def test_empty_data_file(config_file, data_dir, capsys, name):
    (data_dir / name).write_text("\n\n")
    user_error(validate(config_file), capsys, name, "empty")


def test_missing_data_file(config_file, capsys):
    user_error(validate(config_file, "task.path=nope.jsonl"), capsys, "nope.jsonl", "not found")


def test_non_utf8_data(config_file, data_dir, capsys):
    with open(data_dir / "task.jsonl", "ab") as f:
        f.write('{"prompt": "caf\u00e9", "completion": "x"}\n'.encode("latin-1"))
    user_error(validate(config_file), capsys, "task.jsonl:25:", "UTF-8")


def test_utf8_bom_is_accepted(config_file, data_dir, capsys):
    text = (data_dir / "task.jsonl").read_text(encoding="utf-8")
    (data_dir / "task.jsonl").write_text("\ufeff" + text, encoding="utf-8")  # as Windows editors save it
    assert main(validate(config_file)) == 0
    assert '"task_records": 24' in capsys.readouterr().out


def test_bad_test_file_is_caught_before_training(config_file, data_dir, capsys):
    (data_dir / "test.jsonl").write_text('{"prompt": "a", "completion": "b"}\n{oops\n')
    user_error(validate(config_file), capsys, "test.jsonl:2:", "invalid JSON")


# ------------------------------------------------------------------ anchor


def test_empty_anchor(config_file, capsys):
    set_yaml(config_file, "anchor", "text", "   \n ")
    user_error(validate(config_file), capsys, "anchor is empty", "anchor.text")


def test_tell_without_anchor(config_file, capsys):
    user_error(validate(config_file, "anchor.text=null"), capsys, "mix.method=tell needs an anchor", "anchor.text")


def test_sft_anchor_without_anchor(config_file, capsys):
    user_error(validate(config_file, "anchor.text=null", "mix.method=sft+anchor"), capsys,
               "mix.method=sft+anchor needs an anchor")


def test_missing_anchor_file(config_file, capsys):
    user_error(validate(config_file, "anchor.text=null", "anchor.file=anchor.txt"), capsys,
               "anchor.file=", "anchor.txt", "not found")


# ------------------------------------------------------------------ config keys, types, ranges


def test_config_file_not_found(tmp_path, capsys):
    user_error(["validate", str(tmp_path / "nope.yaml")], capsys, "config file not found", "nope.yaml")


def test_unknown_key_in_yaml_with_suggestion(config_file, capsys):
    cfg = yaml.safe_load(config_file.read_text())
    cfg["mix"]["ratoi"] = cfg["mix"].pop("ratio")
    config_file.write_text(yaml.safe_dump(cfg))
    user_error(validate(config_file), capsys, "cfg.yaml", "unknown key 'mix.ratoi'", "did you mean 'mix.ratio'?")


def test_unknown_section_with_suggestion(config_file, capsys):
    user_error(validate(config_file, "trian.lr=1"), capsys, "unknown key 'trian'", "did you mean 'train'?")


@pytest.mark.parametrize("override, expected", [
    ("mix.ratio=-1", "mix.ratio=-1"),
    ("train.batch_size=0", "train.batch_size=0"),
    ("train.lr=fast", "train.lr='fast'"),
    ("lora.r=big", "lora.r='big'"),
    ("train.max_steps=1.5", "train.max_steps=1.5"),
    ("mix.method=magic", "mix.method='magic'"),
    ("task.columns=5", "task.columns=5"),
])
def test_wrong_type_or_range_names_the_key(config_file, capsys, override, expected):
    user_error(validate(config_file, override), capsys, "cfg.yaml", expected)


def test_invalid_yaml_names_line(config_file, capsys):
    config_file.write_text(config_file.read_text() + "extra: [unclosed\n")
    user_error(validate(config_file), capsys, "cfg.yaml:", "invalid YAML")


def test_non_utf8_config(config_file, capsys):
    config_file.write_bytes(config_file.read_bytes() + "# caf\u00e9\n".encode("latin-1"))
    user_error(validate(config_file), capsys, "cfg.yaml", "UTF-8")


def test_bad_override_syntax(config_file, capsys):
    user_error(validate(config_file, "mix.ratio"), capsys, "override 'mix.ratio'", "section.key=value")


def test_unknown_metric(config_file, capsys):
    user_error(validate(config_file, "eval.metrics=[jsn]"), capsys, "eval.metrics", "'jsn'", "did you mean 'json'")


def test_sft_matched_alone(config_file, capsys):
    user_error(validate(config_file, "mix.method=sft-matched"), capsys, "mix.method=sft-matched", "compare")


# ------------------------------------------------------------------ ratio feasibility


def test_ratio_needing_more_general_tokens_than_exist(config_file, capsys):
    line = user_error(validate(config_file, "mix.ratio=1000"), capsys, "mix.ratio=1000", "missing",
                      "mix.allow_general_repeats")
    need, have, missing = (int(x.replace(",", "")) for x in
                           re.search(r"needs ([\d,]+) general tokens but the general data has ([\d,]+) "
                                     r"\(([\d,]+) missing\)", line).groups())
    assert missing == need - have > 0


# ------------------------------------------------------------------ model


def test_unknown_model_id_offline(config_file, capsys):
    user_error(validate(config_file, "model.name=no-such-org/no-such-model"), capsys,
               "model", "'no-such-org/no-such-model'", "HF_HUB_OFFLINE")


def test_model_folder_without_weights(config_file, tiny_model, tmp_path, capsys):
    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_model, broken, ignore=shutil.ignore_patterns("*.safetensors"))
    user_error(validate(config_file, f"model.name={broken}"), capsys, str(broken), "no weights", "model.name")


def test_model_folder_that_does_not_exist(config_file, capsys):
    # relative to the config's folder, and named in full
    user_error(validate(config_file, "model.name=./missing-model"), capsys,
               str(config_file.parent / "missing-model"), "does not exist", "model.name")


# ------------------------------------------------------------------ output folder


def test_output_folder_holding_another_run(config_file, capsys):
    other = load_config(config_file, ["train.lr=0.5"])
    RunDir(other.output.dir).begin(other)  # an interrupted run of a different config
    user_error(validate(config_file), capsys, "output.dir", "holds another run", "--overwrite")
    user_error(["run", str(config_file)], capsys, "output.dir", "holds another run")
    assert RunDir(other.output.dir).state()["status"] == "running"  # untouched
    assert main(validate(config_file) + ["--overwrite"]) == 0


def test_output_folder_that_is_not_a_run(config_file, capsys):
    (config_file.parent / "run").mkdir()
    (config_file.parent / "run" / "notes.txt").write_text("mine")
    user_error(validate(config_file), capsys, "output.dir", "not a tellkit run")
    user_error(["train", str(config_file)], capsys, "output.dir", "not a tellkit run")
    assert (config_file.parent / "run" / "notes.txt").read_text() == "mine"


def test_same_run_in_progress_validates_as_resumable(config_file, capsys):
    cfg = load_config(config_file)
    RunDir(cfg.output.dir).begin(cfg)
    assert main(validate(config_file)) == 0
    assert "training resumes" in capsys.readouterr().out


# ------------------------------------------------------------------ the same checks guard real work


def test_run_fails_on_bad_data_before_loading_weights(config_file, data_dir, capsys, monkeypatch):
    import tellkit.train.trainer as trainer

    def no_weights(*a, **k):
        raise AssertionError("model weights loaded before the data was validated")

    monkeypatch.setattr(trainer, "load_model_and_tokenizer", no_weights)
    good = (data_dir / "general.jsonl").read_text()
    (data_dir / "general.jsonl").write_text(good + "{broken\n")
    user_error(["run", str(config_file)], capsys, "general.jsonl:601:")
    (data_dir / "general.jsonl").write_text(good)
    # a run that failed before training wrote anything does not block the folder for a corrected config
    user_error(["run", str(config_file), "mix.ratio=1000"], capsys, "missing")
    user_error(["run", str(config_file), "anchor.text=null"], capsys, "needs an anchor")


def test_debug_shows_the_traceback(config_file, data_dir):
    (data_dir / "task.jsonl").write_text("{broken\n")
    with pytest.raises(DataError, match=r"task\.jsonl:1"):
        main(["--debug", "validate", str(config_file)])



def test_run_trains_on_the_mixture_validation_built(config_file, capsys, monkeypatch):
    """`tellkit run` checks once: the mixture (and step plan) validation built is the one training uses."""
    import tellkit.mix.prepare as prepare

    built, real = [], prepare.build_mixture

    def counted(*args, **kwargs):
        built.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(prepare, "build_mixture", counted)
    assert main(["run", str(config_file), "train.max_steps=2", "eval.limit=2", "eval.max_new_tokens=2"]) == 0, \
        capsys.readouterr().err
    assert len(built) == 1


def test_every_anchored_method_needs_an_anchor_when_mixing_too(config_file, capsys):
    # one rule (tellkit/methods.py), asked by validation and by the mixture itself (`tellkit mix`/`train`)
    user_error(["mix", str(config_file), "anchor.text=null", "mix.method=sft+anchor"], capsys,
               "mix.method=sft+anchor needs an anchor")
