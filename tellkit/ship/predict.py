"""`tellkit predict RUN_DIR --input FILE|-`: the run's model over new inputs, JSONL out.

Inputs are the task's own record formats (alpaca, messages, prompt/completion; the target field
may be missing) or, when the input is not JSON, one prompt per line. Each gets the run's anchor
and the chat template exactly as evaluation applies them, and is generated in batches by the
evaluation code (greedy unless the run's eval config samples).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from ..data.formats import ALIASES, detect_format, to_examples
from ..data.readers import read_records
from ..data.tokenize import encode_prompt
from ..errors import DataError, check_count
from ..io import atomic_path, check_writable
from ..runs.source import RunSource, load_merged, open_run

CHUNK = 256  # prompts per generate call: output is written (and flushed) as each chunk finishes


def _with_target(record: dict, columns: dict, where: str) -> tuple[dict, str | None]:
    """``record`` made acceptable to to_examples when it has no target; the gold answer if it has one."""
    kind = detect_format(record, columns, where)
    if kind == "messages":
        turns = record.get(columns.get("messages", "messages"), record.get("conversations"))
        if isinstance(turns, list) and turns and isinstance(turns[-1], dict) and \
                str(turns[-1].get("role", turns[-1].get("from", ""))).lower() in ("assistant", "gpt", "model", "bot"):
            return record, turns[-1].get("content", turns[-1].get("value"))
        key = columns.get("messages") or next(k for k in ALIASES["messages"] if k in record)
        return {**record, key: [*turns, {"role": "assistant", "content": "-"}]}, None
    name = "output" if kind == "alpaca" else "completion"
    keys = (columns[name],) if name in columns else ALIASES.get(name, (name,))
    gold = next((record[k] for k in keys if isinstance(record.get(k), str) and record[k].strip()), None)
    return (record, gold) if gold is not None else ({**record, keys[0]: "-"}, None)


def read_inputs(source: str, columns: dict | None = None, stdin: IO[str] | None = None) -> Iterator[dict]:
    """``{"id", "messages" (without the answer), "gold"}`` per input, from a data file or '-' (stdin)."""
    columns = columns or {}
    if source == "-":
        records = _sniff(utf8_lines(stdin or sys.stdin, "<stdin>"))
    elif Path(source).suffix == ".txt":
        with open(source, "rb") as f:
            records = _sniff(utf8_lines(f, source), force_text=True, where=source)
    else:
        records = read_records(source)
    golds: list[str | None] = []

    def fixed() -> Iterable[tuple[str, dict]]:
        for where, record in records:
            record, gold = _with_target(record, columns, where)
            golds.append(gold)
            yield where, record

    for i, ex in enumerate(to_examples(fixed(), "auto", columns, id_prefix="input")):
        yield {"id": ex["id"], "messages": ex["messages"][:-1], "gold": golds[i]}


def utf8_lines(stream, where: str) -> list[str]:
    """The lines of a binary or text stream as UTF-8 text (newline dropped); invalid bytes are a DataError
    naming the line, not a UnicodeDecodeError (or, from a text stdin, surrogates the tokenizer rejects)."""
    raw_stream = getattr(stream, "buffer", stream)  # sys.stdin: read its bytes, decode them ourselves
    lines = []
    for n, line in enumerate(raw_stream, 1):
        lines.append(utf8_line(line, f"{where}:{n}").rstrip("\r\n"))
    return lines


def utf8_line(line: bytes | str, where: str) -> str:
    """One line as UTF-8 text; a DataError naming `where` when it is not valid UTF-8."""
    try:
        return (line.decode("utf-8-sig" if where.endswith(":1") else "utf-8") if isinstance(line, bytes)
                else line.encode("utf-8").decode("utf-8"))  # a str from a lenient text stream may hold surrogates
    except UnicodeError as e:
        byte = f" (byte {e.start})" if isinstance(line, bytes) else ""
        raise DataError(f"{where}: not valid UTF-8{byte}; send UTF-8 text (re-encode it, e.g. with iconv)") from None


def _sniff(lines: list[str], force_text: bool = False, where: str = "<stdin>") -> list[tuple[str, dict]]:
    lines = [line for line in lines if line.strip()]
    as_json = not force_text and bool(lines) and lines[0].lstrip().startswith("{")
    out = []
    for n, line in enumerate(lines, 1):
        if as_json:
            try:
                out.append((f"{where}:{n}", json.loads(line)))
            except json.JSONDecodeError as e:
                raise DataError(f"{where}:{n}: not a JSON object ({e.msg}); give JSONL, or one prompt per line") \
                    from None
        else:
            out.append((f"{where}:{n}", {"prompt": line}))
    if not out:
        raise DataError("no inputs: the input is empty")
    return out


def predict(run_dir: str | Path, source: str, output: str | Path | None = None, *, max_new_tokens: int | None = None,
            batch_size: int | None = None, stdin: IO[str] | None = None, stdout: IO[str] | None = None) -> int:
    """Write one JSON line per input (id, query, output, and gold when the input had one); returns the count."""
    check_count(max_new_tokens, "--max-new-tokens")
    check_count(batch_size, "--batch-size")
    src = open_run(run_dir)
    inputs = list(read_inputs(source, src.cfg.task.columns, stdin))  # bad input fails before the model loads
    if output is not None:
        check_writable(output)  # and so does an output file that cannot be written
    model, tok = load_merged(src)
    if output is None:
        return _write(src, model, tok, inputs, stdout or sys.stdout, max_new_tokens, batch_size)
    with atomic_path(output) as tmp, open(tmp, "w", encoding="utf-8") as f:
        return _write(src, model, tok, inputs, f, max_new_tokens, batch_size)


def _write(src: RunSource, model, tok, inputs: list[dict], out: IO[str], max_new_tokens, batch_size) -> int:
    from tqdm.auto import tqdm

    from ..generation.generate import generate

    e = src.cfg.eval
    # generate's own bar counts the examples of a chunk as they finish; this one the chunks of a long input
    with tqdm(total=len(inputs), desc="predict", unit=" ex", file=sys.stderr, disable=len(inputs) <= CHUNK) as bar:
        for start in range(0, len(inputs), CHUNK):
            chunk = inputs[start: start + CHUNK]
            prompts = [encode_prompt(tok, src.anchored(x["messages"])) for x in chunk]
            outputs = generate(model, tok, prompts,
                               max_new_tokens=e.max_new_tokens if max_new_tokens is None else max_new_tokens,
                               batch_size=e.batch_size if batch_size is None else batch_size, max_batch=e.max_batch,
                               stop_at_json=e.stop_at_json, do_sample=e.do_sample, temperature=e.temperature,
                               seed=src.cfg.train.seed, progress=len(inputs) > 1)
            for x, o in zip(chunk, outputs):
                row = {"id": x["id"], "query": x["messages"][-1]["content"], "output": o}
                if x["gold"] is not None:
                    row["gold"] = x["gold"]
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
            out.flush()
            bar.update(len(chunk))
    return len(inputs)
