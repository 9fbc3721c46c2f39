#!/usr/bin/env python3
"""Copy the TELL authors' WMT-21 Icelandic<->English files into examples/data/wmt21/.

Each row keeps ``query`` and ``response`` exactly (the texts are not changed)
and gains a stable ``id``: ``wmt21-<direction>-<split>-<n>`` (n = 0-based row
index in the source file). Rows are re-serialised as UTF-8 JSON with ``\\n``
line ends (the source uses CRLF).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _datakit import copy_file, make_parser, read_jsonl, write_jsonl, write_text  # noqa: E402

FILES = ["dev-is-en", "test-is-en", "dev-en-is", "test-en-is"]

README = """\
# WMT-21 Icelandic<->English document translation

The TELL paper's released translation task files (from the official repository,
https://github.com/LinesHogan/Token-Efficient-Leverage-Learning, Apache-2.0; see `LICENSE`),
copied by `scripts/build_wmt21_data.py`. One news article per row, one sentence per line.
The text is **WMT-21 news** (WMT 2021 shared task on news translation).

Record format: `{{"id": "wmt21-is-en-dev-0", "query": ..., "response": ...}}`. `query` is the
paper's instruction ("This text is in Icelandic and needs to be translated into English. ...")
followed by the source article; `response` is the reference translation. Texts are copied
unchanged; only `id` is added (and line ends normalised to `\\n`). Use
`task.columns: {{prompt: query, completion: response}}` to read them.

| file | docs | approx. tokens (chars/4) |
|---|---|---|
{table}

tellkit's presets (`examples/wmt21-*.yaml`) train on `dev` (a small, token-budgeted subset) and
evaluate on `test`.
"""


def main() -> int:
    p = make_parser(__doc__.splitlines()[0])
    args = p.parse_args()
    src = args.shared / "tell-wmt21-is-en"
    out: Path = args.out / "wmt21"

    table = []
    for name in FILES:
        direction, split = name.split("-", 1)[1], name.split("-", 1)[0]
        rows = read_jsonl(src / f"{name}.jsonl")
        shipped = []
        for n, r in enumerate(rows):
            assert set(r) == {"query", "response"}, set(r)
            shipped.append({"id": f"wmt21-{direction}-{split}-{n}", "query": r["query"], "response": r["response"]})
        n_rows, tok = write_jsonl(out / f"{name}.jsonl", shipped)
        table.append(f"| `{name}.jsonl` | {n_rows} | ~{tok:,} |")

    write_text(out / "README.md", README.format(table="\n".join(table)))
    copy_file(src / "LICENSE", out / "LICENSE")
    write_text(
        out / "NOTICE",
        "dev-*.jsonl and test-*.jsonl are copied from the TELL paper's official repository\n"
        "(https://github.com/LinesHogan/Token-Efficient-Leverage-Learning), Apache License 2.0\n"
        "(see LICENSE). The article text is from the WMT-21 news translation task\n"
        "(https://www.statmt.org/wmt21/translation-task.html).\n"
        "Changes: an `id` field was added to each row; line ends changed from CRLF to LF.\n",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
