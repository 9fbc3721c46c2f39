"""Fast checks of the shipped example data (examples/data/) and the YAML presets.

These read only the shipped files. One extra check rebuilds the data from
../shared/data and compares byte for byte; it is skipped where that folder is
absent.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
DATA = EXAMPLES / "data"
SHARED = ROOT.parent / "shared" / "data"

# sha256 of the paper's released test_Halu_CoT_JSON.jsonl (1,506 prompts; CRLF line ends)
RELEASED_HALU_SHA256 = "cdb9f650df7f92f0d0dea93e1f7bb297018f56039d8d39c0ee09af5d2b618219"

EXPECTED_ROWS = {
    "halu/train.jsonl": 3001,
    "halu/train-small.jsonl": 64,
    "halu/test.jsonl": 1506,
    "general/general.jsonl": 3339,
    "general/heldout.jsonl": 100,
    "wmt21/dev-is-en.jsonl": 56,
    "wmt21/test-is-en.jsonl": 47,
    "wmt21/dev-en-is.jsonl": 71,
    "wmt21/test-en-is.jsonl": 65,
    "orders/train.jsonl": 400,
    "orders/test.jsonl": 200,
    "tickets/train.jsonl": 40,
    "tickets/test.jsonl": 40,
}
FOLDERS = ["halu", "general", "wmt21", "orders", "tickets"]
PRESETS = sorted(EXAMPLES.glob("*.yaml"))


def load(rel: str) -> list[dict]:
    with open(DATA / rel, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def halu_query(prompt: str) -> str:
    body = prompt.split("Consider the following task:\n'relatives' : \n'user_query' : ", 1)[1]
    return body.split("\n'chatgpt_response' : ", 1)[0]


# --- files ------------------------------------------------------------------


@pytest.mark.parametrize("rel", sorted(EXPECTED_ROWS))
def test_jsonl_parses_with_unique_ids(rel):
    rows = load(rel)
    assert len(rows) == EXPECTED_ROWS[rel]
    ids = [r["id"] for r in rows]
    assert all(isinstance(i, str) and i for i in ids)
    assert len(set(ids)) == len(ids), [i for i, c in Counter(ids).items() if c > 1][:5]
    for r in rows:
        if "prompt" in r:
            assert isinstance(r["prompt"], str) and r["prompt"] and isinstance(r["completion"], str)
        elif "messages" in r:
            assert [m["role"] for m in r["messages"]] == ["user", "assistant"]
            assert all(isinstance(m["content"], str) and m["content"] for m in r["messages"])
        elif "instruction" in r:
            assert isinstance(r["instruction"], str) and r["instruction"]
            assert isinstance(r["input"], str) and isinstance(r["output"], str) and r["output"]
        else:
            assert isinstance(r["query"], str) and isinstance(r["response"], str)


@pytest.mark.parametrize("folder", FOLDERS)
def test_folder_has_licence_and_readme(folder):
    assert (DATA / folder / "LICENSE").is_file()
    assert (DATA / folder / "README.md").is_file()


def test_data_readme_and_size():
    assert (DATA / "README.md").is_file()
    total = sum(p.stat().st_size for p in DATA.rglob("*") if p.is_file())
    assert total < 16_000_000, total


# --- halu -------------------------------------------------------------------


def test_halu_test_prompts_equal_released_file_byte_for_byte():
    test = load("halu/test.jsonl")
    rebuilt = "".join(
        json.dumps({"prompt": r["prompt"], "response": r["label"]}) + "\r\n" for r in test
    ).encode("utf-8")
    assert hashlib.sha256(rebuilt).hexdigest() == RELEASED_HALU_SHA256


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data not present")
def test_halu_test_prompts_equal_released_file_direct():
    released = (SHARED / "tell-wmt21-is-en" / "test_Halu_CoT_JSON.jsonl").read_text(encoding="utf-8")
    released_rows = [json.loads(line) for line in released.splitlines()]
    test = load("halu/test.jsonl")
    assert [r["prompt"] for r in test] == [r["prompt"] for r in released_rows]
    assert [r["label"] for r in test] == [r["response"] for r in released_rows]


@pytest.mark.parametrize("rel", ["halu/train.jsonl", "halu/train-small.jsonl", "halu/test.jsonl"])
def test_halu_records(rel):
    rows = load(rel)
    preamble = load("halu/test.jsonl")[0]["prompt"].split("Consider the following task:")[0]
    for r in rows:
        assert re.fullmatch(r"halu-\d+", r["id"])
        assert r["prompt"].startswith(preamble + "Consider the following task:\n'relatives' : \n'user_query' : ")
        gold = json.loads(r["completion"])
        assert list(gold) == ["thought", "hallucination"]
        assert gold["hallucination"] == r["label"] in ("yes", "no")
        assert gold["thought"]


def test_halu_splits():
    train = load("halu/train.jsonl")
    test = load("halu/test.jsonl")
    small = load("halu/train-small.jsonl")
    train_ids = {int(r["id"].split("-")[1]) for r in train}
    test_ids = {int(r["id"].split("-")[1]) for r in test}
    assert train_ids == set(range(1, 3002))
    assert test_ids == set(range(3002, 4508))
    assert {r["id"] for r in small} <= {r["id"] for r in train}
    assert Counter(r["label"] for r in small) == {"yes": 32, "no": 32}
    # labels alternate, so any prefix (e.g. a small token budget) is balanced
    assert [r["label"] for r in small[:4]] == ["yes", "no", "yes", "no"]
    test_queries = {norm(halu_query(r["prompt"])) for r in test}
    assert not test_queries & {norm(halu_query(r["prompt"])) for r in train}


# --- general ----------------------------------------------------------------


def test_general_excludes_halu_test_queries():
    test_queries = {norm(halu_query(r["prompt"])) for r in load("halu/test.jsonl")}
    assert len(test_queries) > 1400
    for rel in ("general/general.jsonl", "general/heldout.jsonl"):
        for r in load(rel):
            assert norm(r["instruction"]) not in test_queries, r["id"]
            joined = r["instruction"] + ("\n" + r["input"] if r["input"] else "")
            assert norm(joined) not in test_queries, r["id"]


def test_general_heldout_disjoint():
    general = load("general/general.jsonl")
    heldout = load("general/heldout.jsonl")
    assert not {r["id"] for r in general} & {r["id"] for r in heldout}
    assert all(r["id"].startswith("alpaca-") for r in heldout)
    assert {r["id"].split("-")[0] for r in general} == {"alpaca", "halueval"}


# --- wmt21 ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["dev-is-en", "test-is-en", "dev-en-is", "test-en-is"])
def test_wmt21_rows(name):
    src, tgt = ("Icelandic", "English") if name.endswith("is-en") else ("English", "Icelandic")
    for r in load(f"wmt21/{name}.jsonl"):
        assert r["query"].startswith(f"This text is in {src} and needs to be translated into {tgt}.")
        assert r["response"].strip()


# --- orders -----------------------------------------------------------------


def test_orders_gold_validates_against_schema():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((DATA / "orders" / "schema.json").read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"customer", "product", "quantity", "delivery_date", "express"}
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    customers = {}
    for split in ("train", "test"):
        customers[split] = set()
        for r in load(f"orders/{split}.jsonl"):
            gold = json.loads(r["completion"])
            validator.validate(gold)
            assert r["prompt"].startswith("Extract the order from this e-mail as JSON with keys customer, ")
            assert gold["product"] in r["prompt"]
            customers[split].add(gold["customer"])
    assert not customers["train"] & customers["test"]
    # the schema rejects what it should
    assert not validator.is_valid({"customer": "A", "product": "B", "quantity": 1, "delivery_date": "2025-13-01", "express": True})
    assert not validator.is_valid({"customer": "A", "product": "B", "quantity": 1, "delivery_date": "2025-01-01", "express": True, "x": 1})


# --- tickets ----------------------------------------------------------------


def test_tickets_gold_validates_and_labels_are_balanced():
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(json.loads((DATA / "tickets" / "schema.json").read_text("utf-8")))
    names = {}
    for split in ("train", "test"):
        golds = [json.loads(r["messages"][-1]["content"]) for r in load(f"tickets/{split}.jsonl")]
        for gold in golds:
            validator.validate(gold)
        # 40 rows cycle through the 12 (category, priority) pairs: every pair 3 or 4 times
        assert set(Counter((g["category"], g["priority"]) for g in golds).values()) <= {3, 4}
        names[split] = {r["messages"][0]["content"].rsplit("\n", 1)[1] for r in load(f"tickets/{split}.jsonl")}
    assert not names["train"] & names["test"]
    assert not validator.is_valid({"category": "sales", "priority": "high"})


# --- presets ----------------------------------------------------------------


def test_presets_present():
    names = {p.name for p in PRESETS}
    assert {"quickstart.yaml", "halu-cot-json.yaml", "wmt21-is-en.yaml", "wmt21-en-is.yaml", "orders.yaml"} <= names


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
def test_preset_parses_and_points_to_files(preset):
    cfg = yaml.safe_load(preset.read_text(encoding="utf-8"))
    assert isinstance(cfg, dict)
    base = preset.parent
    paths = [
        cfg["task"]["path"],
        cfg["task"].get("test_path"),
        cfg["general"]["path"],
        cfg["general"].get("heldout_path"),
        cfg.get("anchor", {}).get("file"),
        cfg.get("eval", {}).get("json_schema"),
    ]
    for p in paths:
        if p:
            assert (base / p).is_file(), f"{preset.name}: {p} does not exist"
    anchor = cfg["anchor"]
    assert anchor.get("text") or anchor.get("file")
    assert anchor.get("position", "prefix") in ("prefix", "system")
    assert cfg["mix"]["method"] in ("tell", "sft", "general-only")
    # columns must name fields that the task rows actually have
    cols = cfg["task"].get("columns") or {}
    if cols:
        first = json.loads((base / cfg["task"]["path"]).read_text(encoding="utf-8").splitlines()[0])
        assert set(cols.values()) <= set(first)


# --- reproducibility --------------------------------------------------------


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data not present")
def test_build_scripts_reproduce_shipped_data(tmp_path):
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_all_data.py"), "--shared", str(SHARED), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    shipped = sorted(p.relative_to(DATA) for p in DATA.rglob("*") if p.is_file())
    rebuilt = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert shipped == rebuilt
    for rel in shipped:
        assert (DATA / rel).read_bytes() == (tmp_path / rel).read_bytes(), str(rel)
