#!/usr/bin/env python3
"""Build the general instruction data in examples/data/general/.

Sources
  * Alpaca demo data (999 records; CC BY-NC 4.0, research use; from
    LLaMA-Factory's ``alpaca_en_demo.json``)  -> id ``alpaca-<i>`` (0-based index)
  * HaluEval general split, pool IDs 1-3001 with ``hallucination == "no"``
    (MIT)  -> id ``halueval-<ID>``; instruction = user_query, output = chatgpt_response

Any record whose query (normalised: lowercase, collapsed whitespace) equals a
Halu test query (HaluEval IDs 3002-4507) is excluded. For Alpaca the query is
``instruction`` joined to ``input`` by a newline, which is how HaluEval built
its ``user_query`` from Alpaca.

Writes
  general.jsonl  alpaca format (instruction/input/output), all kept records
                 minus the held-out ones
  heldout.jsonl  100 Alpaca-demo records (seeded) held out for measuring
                 general-ability loss
  LICENSE, LICENSE-HaluEval, NOTICE, README.md
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _datakit import (  # noqa: E402
    HALU_POOL_MAX_ID,
    HALU_TEST_MIN_ID,
    copy_file,
    load_halueval,
    make_parser,
    norm_query,
    write_jsonl,
    write_text,
)

N_HELDOUT = 100


def alpaca_query(rec: dict) -> str:
    inp = rec.get("input") or ""
    return rec["instruction"] + ("\n" + inp if inp.strip() else "")


README = """\
# General instruction data

Built by `scripts/build_general_data.py` (seed {seed}). Do not edit by hand.
Alpaca format: `{{"id": ..., "instruction": ..., "input": ..., "output": ..., "source": ...}}`
(`source` is an extra key tellkit ignores).

| file | rows | approx. tokens (chars/4) |
|---|---|---|
| `general.jsonl` | {n_general} ({n_gen_alpaca} Alpaca + {n_gen_halu} HaluEval) | ~{tok_general:,} |
| `heldout.jsonl` | {n_heldout} (Alpaca only) | ~{tok_heldout:,} |

## Sources

* **Alpaca demo** (`alpaca-<i>`, `i` = 0-based index in the source array): the 999
  Stanford-Alpaca records of LLaMA-Factory's `alpaca_en_demo.json`. Stanford Alpaca data is
  licensed **CC BY-NC 4.0 (non-commercial, research use)**; see `LICENSE`.
* **HaluEval** (`halueval-<ID>`): HaluEval `general` records from the training pool
  (IDs 1-3001) that annotators labelled `hallucination == "no"`, as
  `instruction = user_query`, `input = ""`, `output = chatgpt_response`. MIT; see
  `LICENSE-HaluEval`.

## Decontamination against the Halu test set

Queries are compared after normalisation (lowercase, whitespace collapsed). Any record whose
query equals a Halu test query (HaluEval IDs 3002-4507, the paper's released test prompts) is
dropped. For Alpaca the query is `instruction + "\\n" + input` (HaluEval built its `user_query`
from Alpaca that way).

* Alpaca demo: {excl_alpaca} of 999 records excluded (their instruction/input is a Halu test query).
* HaluEval pool: {excl_halu} of {n_pool_no} `no` records excluded (the pool and the test set share
  no query).

## Held-out split

`heldout.jsonl` holds {n_heldout} records drawn (seed {seed}) from the kept **Alpaca** records only
and removed from `general.jsonl`. They are used to measure loss of general ability after
training. Alpaca-only keeps the held-out set independent of the HaluEval pool, from which the
Halu task examples are built.

## Relation to the Halu task

The Halu *task* examples (`../halu/`) are built from the same HaluEval pool (IDs 1-3001), but
wrapped in the paper's hallucination-analysis prompt with a JSON verdict as the target. Here the
`no` records appear as plain instruction/response pairs. This is a deliberate choice: HaluEval's
`no` responses are realistic, human-checked instruction data, and the two formats teach
different things. Because of it, ~{overlap_pct}% of the task training prompts contain a
query/response pair that also appears in the general mix as a plain pair; no Halu *test* query
appears in either.
"""

NOTICE = """\
general.jsonl / heldout.jsonl are derived from:

* Stanford Alpaca data (https://github.com/tatsu-lab/stanford_alpaca), as redistributed in
  LLaMA-Factory's demo data `data/alpaca_en_demo.json`
  (https://github.com/hiyouga/LLaMA-Factory). Licence: Creative Commons
  Attribution-NonCommercial 4.0 International (CC BY-NC 4.0),
  https://creativecommons.org/licenses/by-nc/4.0/ - see LICENSE. Research / non-commercial use
  only. Changes: 0-based index added as `id`; records overlapping the Halu test queries dropped;
  100 records moved to heldout.jsonl.
* HaluEval (https://github.com/RUCAIBox/HaluEval), `data/general_data.json`, MIT License,
  Copyright (c) 2023 RUCAIBox - see LICENSE-HaluEval. Changes: records with
  hallucination == "no" from IDs 1-3001 converted to instruction/output pairs.
"""

CC_BY_NC = """\
The Alpaca records in this folder (ids `alpaca-*`) are licensed under the
Creative Commons Attribution-NonCommercial 4.0 International License
(CC BY-NC 4.0).

  Source: Stanford Alpaca (Taori et al., 2023), https://github.com/tatsu-lab/stanford_alpaca,
          via LLaMA-Factory's demo data (data/alpaca_en_demo.json).
  Licence: https://creativecommons.org/licenses/by-nc/4.0/legalcode
  Summary: you may share and adapt the material for non-commercial purposes, provided you give
           appropriate credit, provide a link to the licence, and indicate if changes were made.

The data was generated with OpenAI's text-davinci-003; its authors state it is intended for
research use only.

The HaluEval records (ids `halueval-*`) are under the MIT License; see LICENSE-HaluEval.
"""


def main() -> int:
    p = make_parser(__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    out: Path = args.out / "general"

    halu = load_halueval(args.shared)
    test_queries = {norm_query(r["user_query"]) for r in halu if r["ID"] >= HALU_TEST_MIN_ID}
    assert len(halu) - HALU_POOL_MAX_ID == 1506

    with open(args.shared / "alpaca-en-demo" / "alpaca_en_demo.json", encoding="utf-8") as f:
        alpaca = json.load(f)
    assert len(alpaca) == 999, len(alpaca)

    alpaca_rows, excl_alpaca = [], 0
    for i, rec in enumerate(alpaca):
        if norm_query(alpaca_query(rec)) in test_queries or norm_query(rec["instruction"]) in test_queries:
            excl_alpaca += 1
            continue
        alpaca_rows.append(
            {
                "id": f"alpaca-{i}",
                "instruction": rec["instruction"],
                "input": rec.get("input") or "",
                "output": rec["output"],
                "source": "alpaca-en-demo",
            }
        )

    pool_no = [r for r in halu if r["ID"] <= HALU_POOL_MAX_ID and r["hallucination"] == "no"]
    halu_rows, excl_halu = [], 0
    for r in pool_no:
        if norm_query(r["user_query"]) in test_queries:
            excl_halu += 1
            continue
        halu_rows.append(
            {
                "id": f"halueval-{r['ID']}",
                "instruction": r["user_query"],
                "input": "",
                "output": r["chatgpt_response"],
                "source": "halueval-general",
            }
        )
    print(
        f"decontamination: excluded {excl_alpaca} Alpaca and {excl_halu} HaluEval records "
        f"whose query equals a Halu test query"
    )

    rng = random.Random(args.seed)
    held_idx = set(rng.sample(range(len(alpaca_rows)), N_HELDOUT))
    heldout = [r for k, r in enumerate(alpaca_rows) if k in held_idx]
    general = [r for k, r in enumerate(alpaca_rows) if k not in held_idx] + halu_rows

    ids = [r["id"] for r in general + heldout]
    assert len(ids) == len(set(ids))
    for r in general + heldout:
        assert norm_query(r["instruction"]) not in test_queries
        assert norm_query(r["instruction"] + ("\n" + r["input"] if r["input"] else "")) not in test_queries

    n_general, tok_general = write_jsonl(out / "general.jsonl", general)
    n_heldout, tok_heldout = write_jsonl(out / "heldout.jsonl", heldout)
    n_pool = sum(r["ID"] <= HALU_POOL_MAX_ID for r in halu)
    write_text(
        out / "README.md",
        README.format(
            seed=args.seed,
            n_general=n_general,
            n_gen_alpaca=len(alpaca_rows) - N_HELDOUT,
            n_gen_halu=len(halu_rows),
            tok_general=tok_general,
            n_heldout=n_heldout,
            tok_heldout=tok_heldout,
            excl_alpaca=excl_alpaca,
            excl_halu=excl_halu,
            n_pool_no=len(pool_no),
            overlap_pct=round(100 * len(halu_rows) / n_pool),
        ),
    )
    write_text(out / "NOTICE", NOTICE)
    write_text(out / "LICENSE", CC_BY_NC)
    copy_file(args.shared / "halueval" / "LICENSE", out / "LICENSE-HaluEval")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
