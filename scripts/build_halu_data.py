#!/usr/bin/env python3
"""Build the Halu-CoT-JSON task files in examples/data/halu/.

Source: HaluEval ``general_data.json`` (MIT). Records 3002-4507 are the
paper's released test prompts (``test_Halu_CoT_JSON.jsonl``, Apache-2.0);
records 1-3001 are the training pool.

Writes
  train.jsonl        all 3001 pool records, prompt/completion (+ label)
  train-small.jsonl  64 pool records, 32 yes / 32 no, alternating labels
  test.jsonl         1506 test records, prompt/completion (+ label); the
                     prompts equal the released prompts byte for byte
  LICENSE, NOTICE, README.md

The paper's chain-of-thought training targets are unpublished, so the
completions are built from HaluEval's ``hallucination`` label and
``hallucination_spans`` (see README.md written below).

Deterministic: same inputs + same --seed give byte-identical outputs.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _datakit import (  # noqa: E402
    HALU_POOL_MAX_ID,
    HALU_TEST_MAX_ID,
    HALU_TEST_MIN_ID,
    copy_file,
    load_halueval,
    make_parser,
    read_jsonl,
    write_jsonl,
    write_text,
)

# --- the released prompt template (verified byte for byte below) -----------

PREAMBLE = (
    "Role and Goal: You are an advanced AI designed to analyze queries, responses, and additional "
    "information provided in a 'relative' field to identify hallucinations. Hallucinations are defined "
    "as any deviation from the expected accuracy and reliability of AI responses. Your analysis "
    "culminates in the creation of a 'thought' field, which details your findings, and a final "
    "'hallucination' label indicating whether a hallucination is present.\n\n"
    "Constraints: You must strictly adhere to JSONL format, focusing your analysis in the 'thought' "
    "field and concluding with a 'hallucination' label, formatted as {\"thought\": \"xxx\", "
    "\"hallucination\": \"yes\" or \"no\"}. Refrain from outputting any fields other than 'thought' "
    "and 'hallucination'.\n\n"
    "Guidelines: You are expected to meticulously review the query, response, and 'relative' field "
    "for accuracy and consistency. Errors must be explained in the 'thought' field as hallucinations, "
    "using a factual and analytical tone.\n\n"
    "Personalization: The final 'hallucination' label is crucial, as it reflects expert validation and "
    "must be accurate. You are tasked with analyzing the 'response' field for hallucinations and "
    "justifying your determination of the hallucination label at the end of your analysis. Your focus "
    "is on pinpointing and elucidating errors as hallucinations, upholding the high standards expected "
    "of AGI, and presenting your analysis clearly and concisely in JSONL format.\n\n"
)

# sha256 of the released test_Halu_CoT_JSON.jsonl (CRLF line ends, ASCII-escaped JSON)
RELEASED_SHA256 = "cdb9f650df7f92f0d0dea93e1f7bb297018f56039d8d39c0ee09af5d2b618219"


def halu_prompt(user_query: str, chatgpt_response: str) -> str:
    return (
        PREAMBLE
        + "Consider the following task:\n'relatives' : \n'user_query' : "
        + user_query
        + "\n'chatgpt_response' : "
        + chatgpt_response
    )


def released_file_bytes(rows: list[dict]) -> bytes:
    """Re-create the released file from (prompt, label) pairs.

    The released file is ``json.dumps({"prompt": p, "response": label})`` per
    line (default ensure_ascii=True) joined with CRLF line ends.
    """
    return "".join(
        json.dumps({"prompt": r["prompt"], "response": r["label"]}) + "\r\n" for r in rows
    ).encode("utf-8")


# --- training / gold targets -----------------------------------------------

SPAN_MAX_CHARS = 200
NO_THOUGHT = "The response addresses the query and I find no unsupported or false claims in it."
YES_GENERIC_THOUGHT = (
    "The response does not correctly or faithfully answer the query: it contains content that is "
    "unsupported, false or not what was asked. It is therefore a hallucination."
)


def clip_span(span: str, limit: int = SPAN_MAX_CHARS) -> str:
    """Strip and clip a span to ``limit`` chars, cutting at whitespace where possible.

    Spans are kept verbatim otherwise (newlines included), so the thought quotes an
    exact substring of the response.
    """
    span = span.strip()
    if len(span) <= limit:
        return span
    cut = span[:limit]
    ws = [m.start() for m in re.finditer(r"\s", cut)]
    if ws and ws[-1] >= limit // 2:
        cut = cut[: ws[-1]]
    return cut.rstrip(" \t\r\n,;:.") + "..."


def thought_for(label: str, spans: list[str]) -> str:
    if label == "no":
        return NO_THOUGHT
    spans = [clip_span(s) for s in spans if isinstance(s, str) and s.strip()]
    if not spans:
        return YES_GENERIC_THOUGHT
    quoted = "; ".join(f'"{s}"' for s in spans)
    return f"The response contains claims that are unsupported or false: {quoted}. It is therefore a hallucination."


def completion_for(label: str, spans: list[str]) -> str:
    return json.dumps(
        {"thought": thought_for(label, spans), "hallucination": label},
        ensure_ascii=False,
        separators=(", ", ": "),
    )


def to_row(rec: dict) -> dict:
    label = rec["hallucination"]
    assert label in ("yes", "no"), rec["ID"]
    return {
        "id": f"halu-{rec['ID']}",
        "prompt": halu_prompt(rec["user_query"], rec["chatgpt_response"]),
        "completion": completion_for(label, rec["hallucination_spans"]),
        "label": label,
    }


# --- small demo subset -------------------------------------------------------

SMALL_PER_LABEL = 32
# Keep demo examples short enough that prompt + completion fit a 768-token
# training window with room for the anchor and the chat template. The estimate
# below charges digits, symbols and non-ASCII characters extra (they split into
# many tokens); calibrated on SmolLM2's tokenizer, a limit of 580 keeps every
# selected pool example at <= ~630 real tokens.
SMALL_MAX_EST_TOKENS = 580


def est_model_tokens(row: dict) -> float:
    text = row["prompt"] + row["completion"]
    content = text[len(PREAMBLE):]
    digits = sum(c.isdigit() for c in text)
    symbols = len(re.findall(r"[^\w\s]", content))
    non_ascii = sum(ord(c) > 127 for c in text)
    return (len(text) + 3 * digits + 1.5 * symbols + 3 * non_ascii) / 4.3


def small_subset(train: list[dict], seed: int) -> list[dict]:
    rng = random.Random(seed)
    by_label = {}
    for lab in ("yes", "no"):
        cands = [
            r for r in train if r["label"] == lab and est_model_tokens(r) <= SMALL_MAX_EST_TOKENS
        ]
        by_label[lab] = rng.sample(cands, SMALL_PER_LABEL)
    # alternate labels (yes, no, yes, no, ...) so any prefix is balanced
    out = []
    for y, n in zip(by_label["yes"], by_label["no"]):
        out.extend([y, n])
    return out


README = """\
# Halu-CoT-JSON task data

The paper's hallucination-detection task (TELL, arXiv 2404.00914, "Halu-CoT-JSON"),
rebuilt from HaluEval's `general` split (RUCAIBox/HaluEval, MIT) by
`scripts/build_halu_data.py`. Do not edit by hand; re-run the script.

| file | rows | what |
|---|---|---|
| `train.jsonl` | {n_train} (yes {train_yes} / no {train_no}) | the whole training pool, HaluEval IDs 1-3001, ~{tok_train:,} tokens |
| `train-small.jsonl` | {n_small} (yes {small_yes} / no {small_no}) | seeded demo subset (seed {seed}), labels alternate yes/no, ~{tok_small:,} tokens |
| `test.jsonl` | {n_test} (yes {test_yes} / no {test_no}) | HaluEval IDs 3002-4507 = the paper's released test prompts, ~{tok_test:,} tokens |

Token counts are chars/4 estimates of prompt + completion.

## Record format

`{{"id": "halu-<ID>", "prompt": ..., "completion": ..., "label": "yes"|"no"}}`
(prompt/completion format; `label` is an extra key tellkit ignores). `<ID>` is the
HaluEval record number (1-based line number of `general_data.json`).

## Prompts

Every prompt is the paper's fixed analysis preamble ("Role and Goal: ... Constraints: ...
Guidelines: ... Personalization: ...") followed by

```
Consider the following task:
'relatives' : 
'user_query' : <user_query>
'chatgpt_response' : <chatgpt_response>
```

The template reproduces the released `test_Halu_CoT_JSON.jsonl` (Apache-2.0, from the
paper's repository LinesHogan/Token-Efficient-Leverage-Learning) **byte for byte**:
the script rebuilds that file from `test.jsonl` (`json.dumps({{"prompt": p, "response": label}})`
per line, CRLF line ends) and asserts its sha256 equals the released file's
(`{sha}`); all {n_test} prompts and gold labels match, none differ.

## Completions (our construction)

The paper's chain-of-thought training file is not released, so we build the targets from
HaluEval's human annotations. Each completion is one line of JSON,
`json.dumps({{"thought": ..., "hallucination": ...}}, ensure_ascii=False, separators=(", ", ": "))`:

* `hallucination == "no"`: thought = "{no_thought}"
* `hallucination == "yes"` with annotated spans: thought = `The response contains claims that are
  unsupported or false: "<span1>"; "<span2>". It is therefore a hallucination.` Spans are quoted
  verbatim (stripped; inner newlines kept, so each is an exact substring of the response), and a
  span longer than {span_max} characters is clipped at a word boundary and marked `...`.
* `hallucination == "yes"` without spans ({yes_nospan} records in the whole file): thought =
  "{yes_generic}"

`test.jsonl` completions are built the same way, so metrics can read the gold
`hallucination` field from them (the `label` field holds the same value).
The thoughts are short and templated; they teach the output format and the decision, not
free-form reasoning like the paper's (unpublished) targets.

## Source quirks

* Three pool records have a corrupted `ID` field in HaluEval (line 1975: `""`; lines
  2059 and 2159: `"ID"`). Every other record's `ID` equals its line number, so we use the
  line number (1975, 2059, 2159).
* `train-small.jsonl` draws only from pool records whose prompt + completion is short
  (a length estimate that charges digits and symbols extra, `est_model_tokens` <= {small_max};
  at most ~630 SmolLM2 tokens), so each example fits a 768-token training window.

## Relation to the general data

`../general/general.jsonl` also contains HaluEval pool records (those labelled `no`), but in
plain instruction format (`instruction` = user_query, `output` = chatgpt_response). The task
examples here wrap the same pool records in the analysis prompt. This is a deliberate choice:
the general mix gets realistic instruction data, and the task keeps its own format; no test
query (IDs 3002-4507) appears in either.

## Licence

HaluEval: MIT (`LICENSE`, copied from RUCAIBox/HaluEval). The prompt preamble comes from the
paper's released file, Apache-2.0 (see `NOTICE`).
"""

NOTICE = """\
This folder is derived from:

* HaluEval (https://github.com/RUCAIBox/HaluEval), `data/general_data.json`,
  MIT License, Copyright (c) 2023 RUCAIBox. The licence text is in LICENSE.
* The prompt preamble and the test-prompt format of `test_Halu_CoT_JSON.jsonl` from the
  TELL paper's official repository
  (https://github.com/LinesHogan/Token-Efficient-Leverage-Learning), Apache License 2.0;
  the full licence text is in ../wmt21/LICENSE.

Modifications: prompts re-generated from HaluEval records with the released template;
`completion` targets built by tellkit's scripts/build_halu_data.py from HaluEval's
`hallucination` and `hallucination_spans` annotations.
"""


def main() -> int:
    p = make_parser(__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    out: Path = args.out / "halu"

    recs = load_halueval(args.shared)
    pool = [r for r in recs if r["ID"] <= HALU_POOL_MAX_ID]
    test_recs = [r for r in recs if HALU_TEST_MIN_ID <= r["ID"] <= HALU_TEST_MAX_ID]
    assert len(pool) == 3001 and len(test_recs) == 1506

    train = [to_row(r) for r in pool]
    test = [to_row(r) for r in test_recs]
    small = small_subset(train, args.seed)

    # --- byte-for-byte check against the released test prompts ---
    released_path = args.shared / "tell-wmt21-is-en" / "test_Halu_CoT_JSON.jsonl"
    released = read_jsonl(released_path)
    assert len(released) == len(test), (len(released), len(test))
    n_prompt_diff = sum(a["prompt"] != b["prompt"] for a, b in zip(test, released))
    n_label_diff = sum(a["label"] != b["response"] for a, b in zip(test, released))
    rebuilt = released_file_bytes(test)
    released_bytes = released_path.read_bytes()
    sha = hashlib.sha256(released_bytes).hexdigest()
    assert sha == RELEASED_SHA256, f"released file changed: {sha}"
    print(
        f"check: {len(test)} test prompts vs released file: {n_prompt_diff} prompt(s) differ, "
        f"{n_label_diff} label(s) differ; rebuilt file identical: {rebuilt == released_bytes}"
    )
    assert n_prompt_diff == 0 and n_label_diff == 0 and rebuilt == released_bytes

    counts = {}
    counts["n_train"], counts["tok_train"] = write_jsonl(out / "train.jsonl", train)
    counts["n_small"], counts["tok_small"] = write_jsonl(out / "train-small.jsonl", small)
    counts["n_test"], counts["tok_test"] = write_jsonl(out / "test.jsonl", test)

    def n_lab(rows, lab):
        return sum(r["label"] == lab for r in rows)

    write_text(
        out / "README.md",
        README.format(
            **counts,
            train_yes=n_lab(train, "yes"),
            train_no=n_lab(train, "no"),
            small_yes=n_lab(small, "yes"),
            small_no=n_lab(small, "no"),
            test_yes=n_lab(test, "yes"),
            test_no=n_lab(test, "no"),
            seed=args.seed,
            sha=RELEASED_SHA256,
            no_thought=NO_THOUGHT,
            yes_generic=YES_GENERIC_THOUGHT,
            span_max=SPAN_MAX_CHARS,
            small_max=SMALL_MAX_EST_TOKENS,
            yes_nospan=sum(r["hallucination"] == "yes" and not r["hallucination_spans"] for r in recs),
        ),
    )
    write_text(out / "NOTICE", NOTICE)
    copy_file(args.shared / "halueval" / "LICENSE", out / "LICENSE")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
