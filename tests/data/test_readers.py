import json

import pandas as pd
import pytest

from tellkit.data.formats import to_examples
from tellkit.data.readers import read_records
from tellkit.errors import DataError


def examples(path, fmt="auto", columns=None):
    return list(to_examples(read_records(str(path)), fmt, columns or {}, id_prefix="x"))


def test_formats_normalise_to_messages(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps([{"instruction": "Add", "input": "1+1", "output": "2"}]))
    (tmp_path / "p.jsonl").write_text(json.dumps({"query": "Q", "response": "R"}) + "\n")
    (tmp_path / "m.jsonl").write_text(json.dumps({"conversations": [{"from": "human", "value": "hi"},
                                                                    {"from": "gpt", "value": "yo"}]}) + "\n")
    assert examples(tmp_path / "a.json")[0]["messages"] == [
        {"role": "user", "content": "Add\n\n1+1"}, {"role": "assistant", "content": "2"}]
    assert examples(tmp_path / "p.jsonl")[0]["messages"][1] == {"role": "assistant", "content": "R"}
    assert [m["role"] for m in examples(tmp_path / "m.jsonl")[0]["messages"]] == ["user", "assistant"]


def test_parquet_csv_and_columns_mapping(tmp_path):
    pd.DataFrame({"q": ["a", "b"], "a": ["1", "2"]}).to_parquet(tmp_path / "d.parquet")
    pd.DataFrame({"q": ["a"], "a": ["1"]}).to_csv(tmp_path / "d.csv", index=False)
    cols = {"prompt": "q", "completion": "a"}
    assert len(examples(tmp_path / "d.parquet", "prompt", cols)) == 2
    assert examples(tmp_path / "d.csv", "auto", cols)[0]["messages"][0]["content"] == "a"


def test_saved_hf_dataset_and_shard_folder(tmp_path):
    from datasets import Dataset

    Dataset.from_list([{"prompt": "p", "completion": "c"}]).save_to_disk(str(tmp_path / "hf"))
    assert len(examples(tmp_path / "hf")) == 1
    (tmp_path / "shards").mkdir()
    for i in range(3):
        (tmp_path / "shards" / f"part-{i}.jsonl").write_text(json.dumps({"prompt": f"p{i}", "completion": "c"}) + "\n")
    assert [e["messages"][0]["content"] for e in examples(tmp_path / "shards")] == ["p0", "p1", "p2"]


def test_malformed_line_names_file_and_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": oops}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2: invalid JSON"):
        examples(p)


def test_missing_field_and_empty_file(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text(json.dumps({"instruction": "x", "input": ""}) + "\n")
    with pytest.raises(DataError, match=r"m\.jsonl:1: missing or empty field 'output'"):
        examples(p)
    (tmp_path / "e.jsonl").write_text("\n")
    with pytest.raises(DataError, match="empty"):
        examples(tmp_path / "e.jsonl")


def test_non_utf8_and_unknown_format(tmp_path):
    (tmp_path / "l.jsonl").write_bytes(b'{"prompt": "caf\xe9", "completion": "x"}\n')
    with pytest.raises(DataError, match=r"l\.jsonl:1: not valid UTF-8"):
        examples(tmp_path / "l.jsonl")
    (tmp_path / "u.jsonl").write_text(json.dumps({"foo": 1}) + "\n")
    with pytest.raises(DataError, match="cannot tell the record format"):
        examples(tmp_path / "u.jsonl")


def test_missing_file():
    with pytest.raises(DataError, match="not found"):
        examples("does/not/exist.jsonl")


def test_a_missing_path_shaped_like_a_hub_id_is_a_missing_file(tmp_path, monkeypatch):
    """Offline (tests run with HF_HUB_OFFLINE=1), "data/task2" is not sent to the hub as a dataset id."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match="data file not found: nosuch/task: no such file or folder"):
        examples("nosuch/task")


def test_a_config_path_under_a_local_folder_is_a_path(config_file):
    """task.path=data/task2 with a data/ folder beside the config: a local file that is missing."""
    from tellkit.config import load_config

    (config_file.parent / "data").mkdir()
    cfg = load_config(config_file, ["task.path=data/task2"])
    assert cfg.task.path == str(config_file.parent / "data" / "task2")
    assert load_config(config_file, ["task.path=org/dataset"]).task.path == "org/dataset"  # a hub id stays one
