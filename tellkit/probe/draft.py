"""Draft anchor candidates with a language model ("self-instruct" style), plus one from a template.

The paper mentions anchors drafted by an LLM. Here a model (the config's base
model by default, or any local model / alias) reads the user turns of k task
examples (truncated) and is asked, instruction-induction style, for one
sentence that describes the task as an instruction. n candidates are sampled
(temperature 0.8, seeded), cleaned (first real line, no "Instruction:" /
"Here is ...:" prefixes, bullets or quotes; whitespace collapsed; long answers
cut at a sentence end; questions and one-word replies dropped), de-duplicated. One
deterministic candidate built from the data itself (the task's name and its
answer format: JSON keys, a small label set, or free text) is always added, so
the list is never empty even with a weak model.

The candidates go to a plain text file, one per line, that the user edits and
then ranks (`tellkit.probe.rank`) or copies into ``anchor.text``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from ..config import Config
from ..errors import ConfigError, TellkitError
from ..io import read_user_text, write_text_atomic

TEMPERATURE = 0.8
MAX_ANCHOR_CHARS = 300
FILE_HEADER = ("# tellkit anchor candidates, one per line. Edit, delete or add lines; lines starting with # "
               "are ignored.\n# Rank them: tellkit anchor rank CONFIG --anchors THIS_FILE\n")

DRAFT_PROMPT = (
    "Here are {k} example requests that all belong to one task.\n\n{examples}\n\n"
    "Write one short sentence, starting with a verb, that tells an assistant what this task is, so that it "
    "can be placed as an instruction in front of every request of this task. Reply with the sentence only."
)

_BULLET = re.compile(r"^(?:[-*•>]+|\d+[.)])\s+")
_LABEL = re.compile(r"^(?:the\s+)?(?:new\s+)?(?:instruction|task(?:\s+description)?|anchor|answer|sentence|output|"
                    r"description|prompt|response)\s*(?:is\s*)?:\s*", re.IGNORECASE)
_CHATTER = re.compile(r"^(?:(?:sure|okay|ok|certainly|of course)\b[,!.]?\s*)?(?:here(?:'s|\s+is)\b[^:]*:\s*)?",
                      re.IGNORECASE)
_QUOTES = "\"'`“”‘’«»*_ "
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")
_GENERIC_NAMES = {"train", "training", "small", "test", "dev", "valid", "validation", "data", "dataset", "task",
                  "tasks", "split", "all", "full", "sample", "examples", "jsonl", "json", "csv", "parquet", "pool"}


# --------------------------------------------------------------------------- cleaning


def clean_candidate(text: str) -> str | None:
    """One single-line anchor from a model's reply, or None when nothing usable is left."""
    for raw in str(text).splitlines():
        line = " ".join(raw.split())
        for _ in range(3):  # prefixes can nest: '1. Instruction: "Sure, here is ...: X"'
            before = line
            line = _BULLET.sub("", line)
            line = _CHATTER.sub("", line, count=1)
            line = _LABEL.sub("", line)
            line = line.strip(_QUOTES)
            if line == before:
                break
        if not line or line.endswith(":"):  # blank, or an intro line ("Here is the instruction:")
            continue
        return _finish(line)
    return None


def _finish(line: str) -> str | None:
    if len(line) > MAX_ANCHOR_CHARS:
        ends = [m.end() for m in _SENTENCE_END.finditer(line, 0, MAX_ANCHOR_CHARS)]
        line = line[: ends[-1]] if ends else line[:MAX_ANCHOR_CHARS].rsplit(" ", 1)[0]
    line = line.lstrip("#").strip(_QUOTES)  # a leading # would read as a comment in the anchor file
    if len(line.split()) < 2 or not any(ch.isalpha() for ch in line) or line.endswith("?"):
        return None  # too short, no words, or a question back to the user (not an instruction)
    return line


def _key(anchor: str) -> str:
    return " ".join(anchor.casefold().split()).rstrip(".!")


def dedupe(anchors: list[str]) -> list[str]:
    """Drop empties and repeats (case, whitespace and a final period ignored), keeping first occurrences."""
    seen, out = set(), []
    for a in anchors:
        if a and a.strip() and _key(a) not in seen:
            seen.add(_key(a))
            out.append(a.strip())
    return out


# --------------------------------------------------------------------------- template candidate


def _task_name(path: str) -> str | None:
    p = Path(path)
    for part in (p.stem, p.parent.name):
        words = [w for w in re.split(r"[^A-Za-z0-9]+", part) if w and w.lower() not in _GENERIC_NAMES
                 and not w.isdigit()]
        if words:
            return " ".join(words)
    return None


def template_anchor(cfg: Config, examples: list[dict]) -> str:
    """A deterministic anchor from the data: the task's name and the shape of its answers."""
    name = _task_name(cfg.task.path)
    head = f"[Task: {name}]" if name else "[Task]"
    answers = [ex["messages"][-1]["content"].strip() for ex in examples if ex["messages"][-1]["role"] == "assistant"]
    objects = []
    for a in answers:
        try:
            value = json.loads(a)
        except ValueError:
            continue
        if isinstance(value, dict):
            objects.append(value)
    if answers and len(objects) >= 0.8 * len(answers):
        counts = Counter(k for obj in objects for k in obj)
        keys = [k for k in dict.fromkeys(k for obj in objects for k in obj) if counts[k] >= len(objects) / 2]
        fields = ", ".join(f'"{k}"' for k in keys[:6])
        return (f"{head} Read the request below and answer with a JSON object"
                + (f" with the keys {fields}." if fields else "."))
    labels = Counter(answers)
    if answers and len(labels) <= 10 and all(len(a.split()) <= 3 for a in labels):
        options = ", ".join(label for label, _ in labels.most_common())
        return f"{head} Read the request below and answer with one of: {options}."
    return f"{head} Read the request below and answer it in the style of this task."


# --------------------------------------------------------------------------- drafting


def drafting_prompt(examples: list[dict], max_chars: int = 500) -> str:
    """The self-instruct request shown to the drafting model: the examples' first user turns, truncated."""
    blocks = []
    for i, ex in enumerate(examples, 1):
        user = next((m["content"] for m in ex["messages"] if m["role"] == "user"), "")
        user = user.strip()
        if len(user) > max_chars:
            user = user[:max_chars].rstrip() + " …"
        blocks.append(f"Example {i}:\n{user}")
    return DRAFT_PROMPT.format(k=len(examples), examples="\n\n".join(blocks))


def draft_anchors(cfg: Config, k: int = 4, n: int = 5, model_ref: str | Path | None = None,
                  max_new_tokens: int = 48, seed: int = 0, *, max_chars: int = 500) -> list[str]:
    """Up to n cleaned, de-duplicated model-drafted anchors, then the template candidate (always present).

    `model_ref`: the drafting model (alias, local folder or hub id); default the config's model.
    """
    from ..data.tokenize import encode_prompt
    from ..generation.generate import generate
    from .probe import load_on_device, task_examples

    if k < 1 or n < 0 or max_new_tokens < 1:
        raise ConfigError(f"draft: need k >= 1, n >= 0 and max_new_tokens >= 1 (got k={k}, n={n}, "
                          f"max_new_tokens={max_new_tokens})")
    stats = task_examples(cfg, max(k, 64))  # the template reads more answers than the model is shown
    drafted: list[str] = []
    if n > 0:
        model, tok, _ = load_on_device(cfg, model_ref)
        prompt = encode_prompt(tok, [{"role": "user", "content": drafting_prompt(stats[:k], max_chars)}])
        replies = generate(model, tok, [prompt] * n, max_new_tokens=max_new_tokens, batch_size=n,
                           do_sample=True, temperature=TEMPERATURE, seed=seed)
        drafted = [c for c in map(clean_candidate, replies) if c]
    return dedupe([*drafted, template_anchor(cfg, stats)])


# --------------------------------------------------------------------------- the anchor file


def write_anchor_file(path: str | Path, anchors: list[str]) -> Path:
    """Write anchors one per line under a '#' header; each must be one non-empty line not starting with '#'."""
    lines = []
    for a in anchors:
        a = str(a).strip()
        if not a or "\n" in a or "\r" in a or a.startswith("#"):
            raise TellkitError(f"anchor {a!r} cannot be written to an anchor file: it must be one non-empty line "
                               "that does not start with '#'")
        lines.append(a)
    return write_text_atomic(path, FILE_HEADER + "".join(f"{a}\n" for a in lines))


def read_anchor_file(path: str | Path) -> list[str]:
    """The anchors in a file written by `write_anchor_file` (blank and '#' lines skipped, repeats dropped)."""
    text = read_user_text(path, f"anchor file {path}")
    anchors = list(dict.fromkeys(s for line in text.splitlines() if (s := line.strip()) and not s.startswith("#")))
    if not anchors:
        raise ConfigError(f"{path} holds no anchors (one per line; lines starting with # are comments)")
    return anchors
