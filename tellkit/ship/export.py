"""`tellkit export RUN_DIR --out DIR`: the run's base model with its LoRA merged, ready to serve.

DIR gets safetensors weights, the tokenizer (default chat template applies the anchor), the
generation config, tellkit_anchor.json, a README.md model card and, with ``gguf``, a GGUF file.
Everything is written into a hidden temp folder next to DIR and renamed at the end, so a failed
export leaves nothing behind, and an existing DIR is never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import TellkitError
from ..io import check_writable
from ..runs.source import load_merged, open_run
from .card import model_card
from .gguf_export import OUTTYPES, write_gguf
from .template import anchored_template

ORIGINAL_TEMPLATE = "chat_template.no_anchor.jinja"  # the base model's template, without the anchor


def export_run(run_dir: str | Path, out: str | Path, *, gguf: bool = False, outtype: str = "f16") -> Path:
    src = open_run(run_dir)
    out = Path(out).expanduser()
    if out.exists() or out.is_symlink():
        raise TellkitError(f"{out} already exists; choose another --out or remove it")
    if gguf and outtype not in OUTTYPES:
        raise TellkitError(f"--outtype {outtype!r} is not supported; use one of {', '.join(OUTTYPES)}")
    check_writable(out)  # a folder we may not write into fails now, named, not after the model loads
    new_parents = [d for d in out.parents if not d.exists()]  # deepest first: removed again on failure
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        model, tok = load_merged(src)
        model.save_pretrained(tmp)
        if src.anchor:
            # Kept outside additional_chat_templates/: transformers' GGUF loader would take a named template
            # from the folder for the only one, dropping the default (anchoring) one.
            (tmp / ORIGINAL_TEMPLATE).write_text(tok.chat_template, encoding="utf-8")
            tok.chat_template = anchored_template(tok.chat_template, src.anchor, src.anchor_position,
                                                  src.anchor_separator)
        tok.save_pretrained(tmp)
        (tmp / "tellkit_anchor.json").write_text(json.dumps({
            "anchor": src.anchor, "position": src.anchor_position, "separator": src.anchor_separator,
            "in_default_chat_template": bool(src.anchor), "run": str(src.path)}, indent=2, ensure_ascii=False) + "\n",
            encoding="utf-8")
        gguf_name = f"{out.name}-{outtype}.gguf" if gguf else None
        if gguf_name:
            # its own folder: transformers, given DIR and gguf_file=, mixes DIR's tokenizer files into the GGUF's
            # tokenizer and loses the chat template
            (tmp / "gguf").mkdir()
            write_gguf(tmp, tmp / "gguf" / gguf_name, outtype, name=out.name)  # not the temp folder's name
        (tmp / "README.md").write_text(model_card(src, gguf_name), encoding="utf-8")
        _as_umask_allows(tmp)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
            for d in new_parents:
                with contextlib.suppress(OSError):  # never hide the export's own error
                    d.rmdir()
    return out


def _as_umask_allows(folder: Path) -> None:
    """Modes a plain copy would get: mkdtemp makes the folder 0700 and transformers writes the weights 0600,
    which a server running as another user could not read."""
    umask = os.umask(0)
    os.umask(umask)
    for path in [folder, *folder.rglob("*")]:
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)
