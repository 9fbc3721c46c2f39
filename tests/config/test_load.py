import pytest

from tellkit.config import config_from_dict, load_config
from tellkit.errors import ConfigError

BASE = {"task": {"path": "t.jsonl"}, "general": {"path": "g.jsonl"}}


def test_defaults_and_override(tmp_path):
    (tmp_path / "c.yaml").write_text("task: {path: t.jsonl}\ngeneral: {path: g.jsonl}\n")
    cfg = load_config(tmp_path / "c.yaml", ["mix.ratio=30", "train.lr=1e-4", "lora.target_modules=[q_proj]"])
    assert cfg.mix.ratio == 30 and cfg.train.lr == 1e-4 and cfg.lora.target_modules == ["q_proj"]
    # relative paths resolve against the config's folder, not the working directory
    assert cfg.task.path == str((tmp_path / "t.jsonl").resolve())


@pytest.mark.parametrize("raw, expected", [
    ({"mix": {"ratoi": 3}}, "did you mean 'mix.ratio'"),
    ({"modle": {}}, "did you mean 'model'"),
    ({"mix": {"ratio": -1}}, "mix.ratio=-1"),
    ({"train": {"batch_size": 0}}, "train.batch_size=0"),
    ({"mix": {"method": "magic"}}, "'tell'"),
    ({"lora": {"r": "big"}}, "lora.r='big'"),
])
def test_bad_values_name_the_key(raw, expected):
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(".", r"\.")):
        config_from_dict({**BASE, **raw})


def test_missing_task_section():
    with pytest.raises(ConfigError, match="task"):
        config_from_dict({"general": {"path": "g.jsonl"}})


def test_bad_yaml_names_line(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("task:\n  path: [unclosed\n")
    with pytest.raises(ConfigError, match=r"c\.yaml:\d+"):
        load_config(p)


def test_bad_override_syntax(tmp_path):
    (tmp_path / "c.yaml").write_text("task: {path: t.jsonl}\n")
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(tmp_path / "c.yaml", ["mix.ratio"])
