"""`tellkit chat RUN_DIR`: talk to the trained model, anchor applied, tokens streamed as they come.

Each line read is a user turn; the conversation is kept (with the anchor on the first user turn,
as in training). Commands: ``/reset`` starts over, ``/exit`` (or end of input) quits.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO

from ..data.tokenize import encode_prompt
from ..errors import check_count
from ..runs.source import load_merged, open_run
from .predict import utf8_line


def chat(run_dir: str | Path, *, max_new_tokens: int | None = None, stdin: IO[str] | None = None,
         stdout: IO[str] | None = None) -> int:
    """Run the loop until end of input; returns the number of answered turns."""
    import torch
    from transformers import TextStreamer

    check_count(max_new_tokens, "--max-new-tokens")
    src = open_run(run_dir)
    model, tok = load_merged(src)
    model.eval()
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    interactive = stdin.isatty()
    max_new = src.cfg.eval.max_new_tokens if max_new_tokens is None else max_new_tokens
    read = getattr(stdin, "buffer", stdin).readline  # bytes from sys.stdin: decoded (and checked) by utf8_line

    class _Out(TextStreamer):  # TextStreamer prints to sys.stdout; send it where we were asked to
        def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
            stdout.write(text + ("\n" if stream_end else ""))
            stdout.flush()

    anchor = f" (anchor: {src.anchor!r})" if src.anchor else ""
    print(f"chat with {src.path.name}{anchor}; /reset starts over, /exit or Ctrl-D quits", file=sys.stderr)
    history: list[dict] = []
    turns = lineno = 0
    while True:
        if interactive:
            print("you> ", end="", file=sys.stderr, flush=True)
        line = read()
        lineno += 1
        if line:
            line = utf8_line(line, f"<stdin>:{lineno}")
        if not line or line.strip() == "/exit":
            return turns
        text = line.strip()
        if not text:
            continue
        if text == "/reset":
            history = []
            continue
        history.append({"role": "user", "content": text})
        ids = torch.tensor([encode_prompt(tok, src.anchored(history)).ids], device=model.device)  # user text stays text
        enc = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=max_new, do_sample=False, top_p=None, top_k=None,
                                 pad_token_id=tok.pad_token_id,
                                 streamer=_Out(tok, skip_prompt=True, skip_special_tokens=True))
        reply = tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip()
        history.append({"role": "assistant", "content": reply})
        turns += 1
