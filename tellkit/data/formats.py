"""Normalise alpaca, messages/sharegpt and prompt/completion records to chat messages.

Every example becomes `{"id": str, "messages": [{"role", "content"}, ...]}`,
the one shape the rest of the pipeline knows. `columns` maps canonical names
(instruction, input, output, messages, prompt, completion, id) to the user's
field names.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from ..errors import DataError

FORMATS = {
    "alpaca": ("instruction", "output"),
    "messages": ("messages",),
    "prompt": ("prompt", "completion"),
}
# Field-name aliases we accept without a `columns:` mapping.
ALIASES = {"messages": ("messages", "conversations"), "prompt": ("prompt", "query"), "completion": ("completion", "response")}
ROLE_NAMES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
              "model": "assistant", "system": "system", "bot": "assistant"}

Example = dict[str, Any]


def to_examples(records: Iterable[tuple[str, dict]], fmt: str = "auto", columns: dict[str, str] | None = None,
                id_prefix: str = "ex") -> Iterator[Example]:
    columns = columns or {}
    n = 0
    for i, (where, record) in enumerate(records):
        kind = fmt if fmt != "auto" else detect_format(record, columns, where)
        messages = _CONVERTERS[kind](record, columns, where)
        rid = record.get(columns.get("id", "id"), record.get("ID"))
        yield {"id": str(rid) if rid is not None else f"{id_prefix}-{i}", "messages": messages}
        n += 1
    if n == 0:
        raise DataError(f"no records found in the {id_prefix} data; the file is empty")


def detect_format(record: dict, columns: dict[str, str], where: str) -> str:
    keys = set(record)
    if _field(record, columns, "messages") is not None:
        return "messages"
    if columns.get("instruction", "instruction") in keys:
        return "alpaca"
    if _field(record, columns, "prompt") is not None:
        return "prompt"
    raise DataError(
        f"{where}: cannot tell the record format from its fields {sorted(keys)}; expected alpaca "
        "(instruction/input/output), messages (messages or conversations) or prompt/completion "
        "(prompt/completion or query/response). Map other names with `columns:`")


def _field(record: dict, columns: dict[str, str], name: str) -> Any:
    for key in (columns[name],) if name in columns else ALIASES.get(name, (name,)):
        if key in record:
            return record[key]
    return None


def _text(record: dict, columns: dict[str, str], name: str, where: str, required: bool = True) -> str:
    value = _field(record, columns, name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if not required:
            return ""
        field = columns.get(name, "/".join(ALIASES.get(name, (name,))))
        raise DataError(f"{where}: missing or empty field '{field}' (fields present: {sorted(record)}); "
                        "map other names with `columns:`")
    if not isinstance(value, str):
        raise DataError(f"{where}: field '{columns.get(name, name)}' must be text, got {type(value).__name__}")
    return value


def _alpaca(record: dict, columns: dict, where: str) -> list[dict]:
    instruction = _text(record, columns, "instruction", where)
    extra = _text(record, columns, "input", where, required=False)
    user = f"{instruction}\n\n{extra}" if extra else instruction
    return [{"role": "user", "content": user}, {"role": "assistant", "content": _text(record, columns, "output", where)}]


def _prompt(record: dict, columns: dict, where: str) -> list[dict]:
    return [{"role": "user", "content": _text(record, columns, "prompt", where)},
            {"role": "assistant", "content": _text(record, columns, "completion", where)}]


def _messages(record: dict, columns: dict, where: str) -> list[dict]:
    turns = _field(record, columns, "messages")
    if not isinstance(turns, list) or not turns:
        raise DataError(f"{where}: 'messages' must be a non-empty list of {{role, content}} turns")
    out = []
    for j, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise DataError(f"{where}: turn {j} is not an object")
        role = ROLE_NAMES.get(str(turn.get("role", turn.get("from", ""))).lower())
        content = turn.get("content", turn.get("value"))
        if role is None or not isinstance(content, str):
            raise DataError(f"{where}: turn {j} needs a role (system/user/assistant or human/gpt) and text content")
        out.append({"role": role, "content": content})
    if out[-1]["role"] != "assistant":
        raise DataError(f"{where}: the last turn must be the assistant's (it is the training target)")
    if not any(t["role"] == "user" for t in out):
        raise DataError(f"{where}: the conversation has no user turn")
    return out


_CONVERTERS = {"alpaca": _alpaca, "prompt": _prompt, "messages": _messages}
