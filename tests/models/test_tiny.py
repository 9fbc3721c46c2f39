from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from tellkit.errors import ModelError
from tellkit.models.tiny import build_tiny_model

CONVERSATION = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": "And of Germany? Reply as JSON."},
    {"role": "assistant", "content": '{"capital": "Berlin", "population": 3645000}'},
]


def test_files_and_reload(tiny_model_dir: Path) -> None:
    names = {p.name for p in tiny_model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json"} <= names
    assert not any(n.endswith((".bin", ".pt")) for n in names)
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["tie_word_embeddings"] is True
    assert config["max_position_embeddings"] == 2048

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, use_safetensors=True)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]) == [0, 1, 2]
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    assert len(tok) == model.config.vocab_size
    assert model.config.eos_token_id == tok.eos_token_id

    text = 'Hello 123 {"a": [1, 2]} café'
    assert tok.decode(tok(text)["input_ids"]) == text


def test_chat_template_and_loss(tiny_model_dir: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    rendered = tok.apply_chat_template(CONVERSATION[1:3], tokenize=False)
    assert rendered == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
        "<|im_start|>assistant\nParis.<|im_end|>\n"
    )
    with_system = tok.apply_chat_template(CONVERSATION[:2], tokenize=False, add_generation_prompt=True)
    assert with_system.startswith("<|im_start|>system\nAnswer briefly.<|im_end|>\n")
    assert with_system.endswith("<|im_start|>assistant\n")
    assert "helpful assistant" not in with_system

    ids = tok.apply_chat_template(CONVERSATION, return_tensors="pt", return_dict=True)["input_ids"]
    out = model(input_ids=ids, labels=ids)
    assert torch.isfinite(out.loss)
    # random init: loss is close to log(vocab)
    assert abs(out.loss.item() - torch.log(torch.tensor(float(len(tok)))).item()) < 1.0
    gen = model.generate(ids[:, :20], max_new_tokens=3, do_sample=False)
    assert gen.shape[1] <= 23


@pytest.mark.parametrize("system", [True, False])
def test_prefix_property(tiny_model_dir: Path, system: bool) -> None:
    """messages[:k] + generation prompt is a token prefix of messages[:k+1] (k+1 = assistant)."""
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    conv = CONVERSATION if system else CONVERSATION[1:]
    for k, msg in enumerate(conv):
        if msg["role"] != "assistant":
            continue
        prompt = tok.apply_chat_template(conv[:k], add_generation_prompt=True, return_dict=False)
        full = tok.apply_chat_template(conv[: k + 1], return_dict=False)
        assert full[: len(prompt)] == prompt
        assert len(full) > len(prompt)
        assert full[-2:] == tok.convert_tokens_to_ids(["<|im_end|>", "\u010a"])  # "<|im_end|>\n"


def test_deterministic_for_seed(tmp_path: Path, tiny_model_dir: Path) -> None:
    again = build_tiny_model(tmp_path / "again")
    other = build_tiny_model(tmp_path / "other", seed=1)
    a = load_file(tiny_model_dir / "model.safetensors")
    b = load_file(again / "model.safetensors")
    c = load_file(other / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert (tiny_model_dir / "tokenizer.json").read_bytes() == (again / "tokenizer.json").read_bytes()
    # the tokenizer does not depend on the model seed
    assert (tiny_model_dir / "tokenizer.json").read_bytes() == (other / "tokenizer.json").read_bytes()


def test_build_is_fast_and_options(tmp_path: Path) -> None:
    start = time.perf_counter()
    path = build_tiny_model(
        tmp_path / "m", vocab_size=400, hidden_size=32, num_layers=1, num_heads=2,
        corpus=["zebra quokka " * 5] * 20,
    )
    assert time.perf_counter() - start < 5.0
    config = json.loads((path / "config.json").read_text())
    assert config["hidden_size"] == 32 and config["num_hidden_layers"] == 1
    assert config["vocab_size"] <= 400
    tok = AutoTokenizer.from_pretrained(path)
    assert len(tok("zebra quokka")["input_ids"]) <= 4  # the extra corpus was learned


def test_bad_sizes(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="vocab_size"):
        build_tiny_model(tmp_path / "a", vocab_size=100)
    with pytest.raises(ModelError, match="num_heads"):
        build_tiny_model(tmp_path / "b", hidden_size=30, num_heads=4)
