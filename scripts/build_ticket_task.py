#!/usr/bin/env python3
"""Generate the synthetic support-ticket triage task in examples/data/tickets/.

A classification-to-JSON task of our own design, unlike Orders (which copies
facts out of the text): a short customer support ticket (about 15-40 words)
must be *classified*; the target is one line of JSON

    {"category": "billing" | "account" | "shipping" | "technical",
     "priority": "low" | "normal" | "high"}

The category follows from what the problem is about (a double charge, a
locked log-in, a lost parcel, a crashing app), the priority from how the
customer words the urgency ("Our whole team is blocked." / "No rush at all." /
neither). Every label has explicit cues, so a 135M model can learn the task
from a few dozen examples in a few dozen optimizer steps; that is what the
`make demo` compare needs.

Generalisation is tested, not just format: train and test use disjoint
customer names, and test draws part of its problem sentences and urgency cues
from phrasings never seen in training (the last two problem templates of each
category, the last urgency cue of each priority).

Writes train.jsonl (40), test.jsonl (40), schema.json, README.md, LICENSE in
`messages` format. Labels are balanced: each split cycles through all twelve
(category, priority) pairs in a seeded order. Deterministic for a given --seed.
"""

from __future__ import annotations

import itertools
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _datakit import generated_licence, make_parser, write_jsonl, write_text  # noqa: E402

N_TRAIN = 40
N_TEST = 40
MIN_WORDS, MAX_WORDS = 15, 40
HELD_OUT_PROBLEMS = 2  # per category, test-only phrasings
HELD_OUT_CUES = 1  # per priority, test-only phrasings

INSTRUCTION = "Triage this ticket as JSON: category (billing, account, shipping, technical), priority (low, normal, high)."

CATEGORIES = ["billing", "account", "shipping", "technical"]
PRIORITIES = ["low", "normal", "high"]

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://github.com/tellkit/tellkit/examples/data/tickets/schema.json",
    "title": "Triage of a customer support ticket",
    "type": "object",
    "properties": {
        "category": {"enum": CATEGORIES},
        "priority": {"enum": PRIORITIES},
    },
    "required": ["category", "priority"],
    "additionalProperties": False,
}

# --- vocabularies -----------------------------------------------------------

TRAIN_NAMES = [
    "Anna Berg", "Ben Okafor", "Carla Rossi", "David Kim", "Elena Petrov", "Farid Haddad",
    "Grace Walsh", "Hugo Dubois", "Ingrid Dahl", "Jamal Reyes", "Keiko Tanaka", "Liam Evans",
    "Maria Lopez", "Noah Fischer", "Olivia Costa", "Pablo Vargas", "Rosa Jensen", "Samir Patel",
    "Tara Nguyen", "Vera Novak",
]
TEST_NAMES = [
    "Aisha Mensah", "Bruno Santos", "Chloe Lambert", "Dmitri Horvat", "Emma Weber", "Felix Olsen",
    "Greta Romano", "Hannah Young", "Ivan Sato", "Julia Torres", "Karim Iqbal", "Lena Zhao",
    "Mateo Navarro", "Nina Kruger", "Oscar Pereira", "Priya Delgado", "Rafael Eze", "Sofia Abbott",
]

PRODUCTS = ["Aero laptop stand", "M210 mouse", "Nordic wall clock", "Breeze desk fan", "K7 keyboard",
            "HD720 webcam", "Steamline kettle", "LP-40 label printer"]
PLANS = ["Basic", "Plus", "Team", "Pro"]
FEATURES = ["reports", "settings", "calendar", "invoices", "dashboard"]

# Problem sentences per category; the last HELD_OUT_PROBLEMS of each list appear only in test.
PROBLEMS = {
    "billing": [
        "I was charged twice for my {plan} subscription this month.",
        "My invoice shows {amount} but the {plan} plan should cost less.",
        "The payment for order {oid} was taken from my card two times.",
        "Why was my card billed {amount} after I cancelled the {plan} plan?",
        "There is an extra fee of {amount} on my last invoice that I do not understand.",
        "I was billed for the {plan} plan although I switched to Basic.",
        "Please refund the duplicate payment of {amount} from last week.",
        "My bank statement shows a charge of {amount} from you that I never agreed to.",
    ],
    "account": [
        "I cannot log in to my account since yesterday.",
        "The password reset e-mail never arrives in my inbox.",
        "My account was locked after a few wrong passwords.",
        "I want to change the e-mail address on my account.",
        "The two-factor code is rejected every time I sign in.",
        "Please close my account and delete my profile.",
        "Someone changed my username and I no longer recognise the profile.",
        "The sign-in page says my user does not exist, but I have used it for years.",
    ],
    "shipping": [
        "My parcel for order {oid} has still not arrived.",
        "The tracking page for order {oid} has not changed in a week.",
        "The package was delivered to the wrong address.",
        "The box arrived crushed and the {product} inside is broken.",
        "Can I change the delivery address for order {oid}?",
        "The courier says order {oid} was delivered, but nothing came.",
        "Only half of order {oid} was in the box; the {product} is missing.",
        "The delivery van came a day early and left the {product} outside in the rain.",
    ],
    "technical": [
        "The app crashes every time I open the {feature} page.",
        "My {product} stopped working after the latest update.",
        "Exporting the {feature} page gives an error 500.",
        "The website is very slow and the {feature} page times out.",
        "Sync between my phone and my laptop stopped working.",
        "The firmware update for my {product} fails halfway.",
        "The {feature} page shows a blank screen since this morning.",
        "Every time I press save on the {feature} page the browser freezes.",
    ],
}

# Urgency cues per priority; the last HELD_OUT_CUES of each list appear only in test. "normal" has
# neutral requests (a ticket still asks for something) and sometimes no cue at all.
CUES = {
    "high": [
        "This is urgent.",
        "Our whole team is blocked by this.",
        "Please fix this today.",
        "We are losing sales because of this.",
        "I need this solved right away, please.",
        "This is critical for our business and cannot wait.",
    ],
    "low": [
        "No rush at all.",
        "Whenever you have time is fine.",
        "It is only a small thing.",
        "Not urgent, just letting you know.",
        "It can wait until next week.",
        "Take your time, it is a minor issue.",
    ],
    "normal": [
        "Could you look into it?",
        "Please let me know what to do.",
        "Can you help me with this?",
        "What are my options?",
        "",
        "I would appreciate an update on this.",
    ],
}

GREETINGS = ["Hi,", "Hello,", "Hello support,", "Dear support team,", "Good morning,", "Hi there,", ""]
SIGNOFFS = ["Thanks,", "Thank you,", "Regards,", "Best,", "Cheers,", "Kind regards,"]
FILLERS = ["I have been a customer for two years.", "I already restarted everything.",
           "I checked the help pages first.", "My colleague has the same problem.", ""]


def _fill(template: str, rng: random.Random) -> str:
    return template.format(plan=rng.choice(PLANS), amount=f"${rng.randint(5, 250)}.{rng.randint(0, 99):02d}",
                           oid=f"#{rng.randint(10000, 99999)}", product=rng.choice(PRODUCTS),
                           feature=rng.choice(FEATURES))


def make_ticket(rng: random.Random, name: str, category: str, priority: str, test: bool) -> str:
    problems = PROBLEMS[category] if test else PROBLEMS[category][:-HELD_OUT_PROBLEMS]
    cues = CUES[priority] if test else CUES[priority][:-HELD_OUT_CUES]
    for _ in range(200):
        body = [s for s in (_fill(rng.choice(problems), rng), rng.choice(FILLERS)) if s]
        cue = rng.choice(cues)
        if cue:  # the urgency cue goes first or last, so the model cannot rely on its position
            body = [cue, *body] if rng.random() < 0.3 else [*body, cue]
        parts = [p for p in (rng.choice(GREETINGS), " ".join(body), f"{rng.choice(SIGNOFFS)}\n{name}") if p]
        ticket = "\n\n".join(parts)
        if MIN_WORDS <= len(ticket.split()) <= MAX_WORDS:
            return ticket
    raise RuntimeError("could not build a ticket within the word range")


def build_split(rng: random.Random, n: int, names: list[str], split: str) -> list[dict]:
    pairs = list(itertools.product(CATEGORIES, PRIORITIES))
    labels: list[tuple[str, str]] = []
    while len(labels) < n:  # every pair once per cycle, each cycle in a seeded order
        cycle = pairs[:]
        rng.shuffle(cycle)
        labels += cycle
    rows = []
    for i, (category, priority) in enumerate(labels[:n]):
        ticket = make_ticket(rng, rng.choice(names), category, priority, test=split == "test")
        gold = {"category": category, "priority": priority}
        rows.append({"id": f"tickets-{split}-{i:03d}", "messages": [
            {"role": "user", "content": f"{INSTRUCTION}\n\n{ticket}"},
            {"role": "assistant", "content": json.dumps(gold, separators=(", ", ": "))},
        ]})
    return rows


README = """\
# Support-ticket triage (synthetic)

A classification-to-JSON task of our own design, generated by
`scripts/build_ticket_task.py` (seed {seed}). Do not edit by hand; re-run the script.
It is the task of `examples/demo.yaml` (`make demo`).

Each record is in `messages` format: one user turn

```
{instruction}

<ticket of {min_words}-{max_words} words>
```

and one assistant turn, a line of JSON matching `schema.json` (JSON Schema draft 2020-12,
both keys required, no other keys):

```
{example}
```

| file | rows | approx. tokens (chars/4) |
|---|---|---|
| `train.jsonl` | {n_train} | ~{tok_train:,} |
| `test.jsonl` | {n_test} | ~{tok_test:,} |

## Generator

* **Labels**: {n_cat} categories x {n_pri} priorities; each split cycles through all
  {n_pairs} pairs in a seeded order, so the labels are balanced.
* **Category**: one problem sentence per ticket ({n_prob} phrasings per category, with
  plan names, amounts, order numbers, products and app pages filled in).
* **Priority**: an urgency cue ("This is urgent." / "No rush at all.") or, for `normal`, a
  neutral request or nothing; first or last in the body.
* **Held out**: train and test use disjoint customer names; the last {ho_prob} problem
  phrasings of each category and the last {ho_cue} cue of each priority appear only in test
  (about half of the test tickets use one), so field accuracy measures more than recall.
* **Variation**: {n_greet} greetings (or none), {n_sign} sign-offs, an optional filler sentence.

Every gold answer is validated against `schema.json` when the script runs.

## Licence

Generated data, released with tellkit under Apache-2.0 (see `LICENSE`). All names, orders
and tickets are fictitious.
"""



def main() -> int:
    import jsonschema

    p = make_parser(__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    # Larger sets for the scale studies (scripts/run_study3.sh builds them): e.g. --train 1000 --name tickets-1k
    # --out examples/runs/data writes examples/runs/data/tickets-1k/, not the shipped tickets/ examples and tests use.
    p.add_argument("--train", type=int, default=N_TRAIN, help="training examples (default %(default)s)")
    p.add_argument("--test", type=int, default=N_TEST, help="test examples (default %(default)s)")
    p.add_argument("--name", default="tickets", help="sub-folder of --out to write (default %(default)s)")
    args = p.parse_args()
    out: Path = args.out / args.name

    assert not set(TRAIN_NAMES) & set(TEST_NAMES)
    rng = random.Random(args.seed)
    train = build_split(rng, args.train, TRAIN_NAMES, "train")
    test = build_split(rng, args.test, TEST_NAMES, "test")

    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for row in train + test:
        validator.validate(json.loads(row["messages"][-1]["content"]))
    print(f"validated {len(train) + len(test)} gold answers against schema.json")

    n_train, tok_train = write_jsonl(out / "train.jsonl", train)
    n_test, tok_test = write_jsonl(out / "test.jsonl", test)
    write_text(out / "schema.json", json.dumps(SCHEMA, indent=2, ensure_ascii=False) + "\n")
    write_text(out / "README.md", README.format(
        seed=args.seed, instruction=INSTRUCTION, min_words=MIN_WORDS, max_words=MAX_WORDS,
        example=train[0]["messages"][-1]["content"], n_train=n_train, tok_train=tok_train, n_test=n_test,
        tok_test=tok_test, n_cat=len(CATEGORIES), n_pri=len(PRIORITIES), n_pairs=len(CATEGORIES) * len(PRIORITIES),
        n_prob=len(PROBLEMS["billing"]), ho_prob=HELD_OUT_PROBLEMS, ho_cue=HELD_OUT_CUES,
        n_greet=len(GREETINGS) - 1, n_sign=len(SIGNOFFS)))
    write_text(out / "LICENSE", generated_licence("build_ticket_task.py"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
