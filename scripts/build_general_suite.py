"""Build tellkit's default out-of-distribution general-ability suite (tellkit/evaluate/general_suite/).

Two lm-evaluation-harness tasks, from real text that is in none of tellkit's general mixes
(examples/data/general: Alpaca demo + HaluEval) nor its tasks (tickets, orders, Halu, WMT):

* ``wordnet_define.jsonl`` (task ``tellkit_wordnet``): "which definition fits WORD", 4 ways, scored by
  log-likelihood. WordNet 3.0 (Debian's ``wordnet-base``, ``apt-get install -y wordnet-base``): for each
  word its most frequent sense's definition (the first synset of the word in WordNet's index, which is
  ordered by tagged frequency), three distractors from other words' definitions of the same part of
  speech and about the same length (so neither the raw nor the length-normalised likelihood wins
  by length alone). Only words with tagged occurrences in the SemCor corpus (tagsense_cnt >= 1), one
  alphabetic word each: a 135M model should know them, so the base score sits well above chance and
  forgetting can show.
* ``pydoc.jsonl`` (task ``tellkit_pydoc``): docstrings of the Python standard library of the Python
  running this script (parsed with ``ast``, nothing imported), scored as rolling log-likelihood
  (bits per byte): technical API prose, a domain neither mix holds.

Rows are shuffled with a fixed seed, so ``eval.general_limit: N`` (lm-eval's ``limit``: the first N
rows) is a random sample. Every row is checked against the general mixes: a definition or docstring
that appears verbatim there (case-insensitive) is dropped, and the count is written to the README.

    apt-get update && apt-get install -y wordnet-base
    .venv/bin/python scripts/build_general_suite.py          # rewrites tellkit/evaluate/general_suite/*.jsonl
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import re
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SUITE = REPO / "tellkit" / "evaluate" / "general_suite"
MIXES = [REPO / "examples" / "data" / "general" / "general.jsonl",
         REPO / "examples" / "data" / "general" / "heldout.jsonl"]
WORDNET = Path("/usr/share/wordnet")
POS = ("noun", "verb", "adj", "adv")  # the suffixes of WordNet's index.* and data.* files
SEED = 0


# ------------------------------------------------------------------ WordNet


def first_senses(wordnet: Path, pos: str) -> dict[str, str]:
    """{word: synset offset of its most frequent sense}, for one-word lemmas tagged in SemCor."""
    out = {}
    for line in (wordnet / f"index.{pos}").read_text(encoding="latin-1").splitlines():
        if line.startswith(" "):  # the licence header
            continue
        f = line.split()
        lemma, p_cnt = f[0], int(f[3])
        tagsense_cnt = int(f[5 + p_cnt])
        offsets = f[6 + p_cnt:]
        if tagsense_cnt >= 1 and re.fullmatch(r"[a-z]{3,}", lemma):
            out[lemma] = offsets[0]
    return out


def definitions(wordnet: Path, pos: str) -> dict[str, tuple[str, list[str]]]:
    """{offset: (definition, lemmas of the synset)}; the definition is the gloss without its examples."""
    out = {}
    for line in (wordnet / f"data.{pos}").read_text(encoding="latin-1").splitlines():
        if line.startswith(" ") or "|" not in line:
            continue
        head, gloss = line.split("|", 1)
        f = head.split()
        n_words = int(f[3], 16)
        lemmas = [re.sub(r"\(.*\)$", "", f[4 + 2 * i]).lower() for i in range(n_words)]
        definition = re.split(r';\s*"', gloss.strip())[0].strip().rstrip(";").strip()
        out[f[0]] = (definition, lemmas)
    return out


def _mentions(definition: str, word: str) -> bool:
    return re.search(rf"\b{re.escape(word[:max(4, len(word) - 2)])}", definition.lower()) is not None


def wordnet_items(wordnet: Path, n: int, rng: random.Random) -> list[dict]:
    """n four-way items: a word, its first sense's definition and three same-POS distractors of similar length."""
    pool = []
    for name in POS:
        defs = definitions(wordnet, name)
        for word, offset in first_senses(wordnet, name).items():
            definition, lemmas = defs[offset]
            words = len(definition.split())
            if 3 <= words <= 18 and not _mentions(definition, word) and definition[:1].isalpha():
                pool.append({"word": word, "pos": name, "definition": definition, "n_words": words,
                             "lemmas": set(lemmas)})
    rng.shuffle(pool)
    by_pos: dict[str, list[dict]] = {}
    for p in pool:
        by_pos.setdefault(p["pos"], []).append(p)
    items, used = [], set()  # the pool is shuffled: parts of speech come in the proportions of the pool
    for p in pool:
        if len(items) == n:
            break
        if p["definition"] in used:
            continue
        near = [q for q in by_pos[p["pos"]] if q is not p and abs(q["n_words"] - p["n_words"]) <= 2
                and q["definition"] != p["definition"] and p["word"] not in q["lemmas"]
                and not _mentions(q["definition"], p["word"])]
        if len(near) < 3:
            continue
        distractors = [q["definition"] for q in rng.sample(near, 3)]
        if len(set(distractors)) < 3:
            continue
        choices = distractors + [p["definition"]]
        rng.shuffle(choices)
        used.add(p["definition"])
        items.append({"id": f"wn-{p['pos']}-{p['word']}", "word": p["word"], "pos": p["pos"],
                      "choices": choices, "label": choices.index(p["definition"])})
    if len(items) < n:
        sys.exit(f"only {len(items)} WordNet items could be built, {n} asked")
    return items


# ------------------------------------------------------------------ Python docstrings


def docstrings(stdlib: Path, min_chars: int, max_chars: int) -> list[dict]:
    """Module, class and function docstrings of the standard library (tests and private modules left out)."""
    out, seen = [], set()
    for path in sorted(stdlib.rglob("*.py")):
        rel = path.relative_to(stdlib)
        if any(part in ("test", "tests", "site-packages", "idlelib", "lib2to3", "turtledemo", "__pycache__")
               or part.startswith("_") and part != "__init__.py" for part in rel.parts):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in [tree, *ast.walk(tree)]:
            if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if not isinstance(node, ast.Module) and node.name.startswith("_"):
                continue
            text = ast.get_docstring(node, clean=True)
            if not text or not (min_chars <= len(text) <= max_chars) or ">>>" in text or not text.isascii():
                continue
            key = " ".join(text.split())
            if key in seen:
                continue
            seen.add(key)
            name = rel.with_suffix("").as_posix().replace("/", ".")
            where = name if isinstance(node, ast.Module) else f"{name}.{node.name}"
            out.append({"id": f"py-{where}", "text": text})
    return out


# ------------------------------------------------------------------ decontamination


def mix_text() -> str:
    rows = [json.loads(line) for path in MIXES if path.exists()
            for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return " ".join(" ".join(str(v) for v in r.values()) for r in rows).lower()


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--wordnet", type=Path, default=WORDNET, help="WordNet 3.0 dict folder (wordnet-base)")
    p.add_argument("--items", type=int, default=1200, help="WordNet four-way items")
    p.add_argument("--docs", type=int, default=300, help="Python docstrings")
    p.add_argument("--out", type=Path, default=SUITE)
    args = p.parse_args(argv)
    if not (args.wordnet / "data.noun").exists():
        sys.exit(f"no WordNet at {args.wordnet}: apt-get install -y wordnet-base")
    rng = random.Random(SEED)
    mixes = " ".join(mix_text().split())

    items = wordnet_items(args.wordnet, args.items + 100, rng)  # spares for the ones decontamination drops
    clean = [it for it in items if _norm(it["choices"][it["label"]]) not in mixes]
    dropped_wn = len(items) - len(clean)
    items = clean[: args.items]

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    docs = docstrings(stdlib, 300, 1500)
    rng.shuffle(docs)
    clean_docs = [d for d in docs if _norm(d["text"])[:200] not in mixes]
    dropped_py = len(docs) - len(clean_docs)
    docs = clean_docs[: args.docs]

    args.out.mkdir(parents=True, exist_ok=True)
    write_jsonl(args.out / "wordnet_define.jsonl", items)
    write_jsonl(args.out / "pydoc.jsonl", docs)
    pos_counts = {k: sum(it["pos"] == k for it in items) for k in POS}
    print(json.dumps({"wordnet_items": len(items), "by_pos": pos_counts, "wordnet_dropped_as_in_mix": dropped_wn,
                      "pydoc_docs": len(docs), "pydoc_chars": sum(len(d["text"]) for d in docs),
                      "pydoc_dropped_as_in_mix": dropped_py, "python": sys.version.split()[0]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
