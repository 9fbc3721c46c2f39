#!/usr/bin/env python3
"""Generate the synthetic order-extraction task in examples/data/orders/.

A small structured-extraction task of our own design: short customer e-mails
(about 40-80 words) ordering a product; the target is one line of JSON

    {"customer": str, "product": str, "quantity": int,
     "delivery_date": "YYYY-MM-DD", "express": bool}

The e-mails vary greetings, sign-offs, sentence templates and order, write
quantities as digits or words and dates in several formats, and add
distractors (customer/PO numbers, phone numbers, street numbers, earlier
quantities and dates). Every fact needed is stated explicitly, so the task is
learnable from a few dozen examples by a small model.

Train and test use disjoint surnames (so no customer name, and no
customer/product combination, is shared) and test draws half of its products
from a product list never seen in training.

Writes train.jsonl (400), test.jsonl (200), schema.json, README.md, LICENSE.
Every gold completion is validated against schema.json. Deterministic for a
given --seed.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _datakit import generated_licence, make_parser, write_jsonl, write_text  # noqa: E402

N_TRAIN = 400
N_TEST = 200
MIN_WORDS, MAX_WORDS = 40, 80

INSTRUCTION = (
    "Extract the order from this e-mail as JSON with keys customer, product, quantity, delivery_date, express."
)

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://github.com/tellkit/tellkit/examples/data/orders/schema.json",
    "title": "Order extracted from a customer e-mail",
    "type": "object",
    "properties": {
        "customer": {"type": "string", "minLength": 1, "description": "full name of the person ordering"},
        "product": {"type": "string", "minLength": 1, "description": "product name as written in the e-mail"},
        "quantity": {"type": "integer", "minimum": 1},
        "delivery_date": {
            "type": "string",
            "format": "date",
            "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$",
        },
        "express": {"type": "boolean"},
    },
    "required": ["customer", "product", "quantity", "delivery_date", "express"],
    "additionalProperties": False,
}

# --- vocabularies -----------------------------------------------------------

FIRST_NAMES = [
    "Anna", "Ben", "Carla", "David", "Elena", "Farid", "Grace", "Hugo", "Ingrid", "Jamal",
    "Keiko", "Liam", "Maria", "Noah", "Olivia", "Pablo", "Quinn", "Rosa", "Samir", "Tara",
    "Umar", "Vera", "Wei", "Xenia", "Yusuf", "Zoe", "Aisha", "Bruno", "Chloe", "Dmitri",
    "Emma", "Felix", "Greta", "Hannah", "Ivan", "Julia", "Karim", "Lena", "Mateo", "Nina",
    "Oscar", "Priya", "Rafael", "Sofia", "Tomas", "Ursula", "Viktor", "Wanda", "Yara", "José",
    "Chen", "Fatima", "Kofi", "Leila", "Marco", "Nadia", "Omar", "Paula", "Ravi", "Sara",
]
TRAIN_SURNAMES = [
    "Andersen", "Baker", "Castillo", "Dubois", "Eriksson", "Fischer", "Garcia", "Hoffmann",
    "Ivanova", "Jensen", "Kowalski", "Lopez", "Müller", "Nakamura", "Okafor", "Petrov",
    "Quintero", "Rossi", "Schmidt", "Tanaka", "Uddin", "Vargas", "Walsh", "Xu", "Yilmaz",
    "Zimmermann", "Almeida", "Brennan", "Costa", "Dahl", "Evans", "Novak", "Haddad", "Kim",
    "Lindqvist", "Moreau", "Nguyen", "O'Brien", "Patel", "Reyes",
]
TEST_SURNAMES = [
    "Santos", "Bergström", "Chowdhury", "Delgado", "Eze", "Fontaine", "Gallagher", "Horvat",
    "Iqbal", "Jovanović", "Kruger", "Lambert", "Mensah", "Navarro", "Olsen", "Pereira",
    "Romano", "Sato", "Torres", "Vasquez", "Weber", "Young", "Zhao", "Abbott", "Sokolova",
]

TRAIN_PRODUCTS = [
    "ceramic coffee mug", "ErgoLite desk lamp", "A4 printer paper box", "wireless mouse M210",
    "stainless steel water bottle", "oak bookshelf", "USB-C charging cable", "standing desk mat",
    "noise-cancelling headset", "whiteboard marker set", "office chair Comfort Pro", "paper shredder S5",
    "LED panel light", "cotton tote bag", "glass meal container", "laptop stand Aero",
    "yoga mat", "espresso machine Barista One", "first aid kit", "safety goggles",
    "bamboo cutting board", "wall clock Nordic", "label printer LP-40", "cordless drill D18",
    "hand sanitiser bottle", "notebook A5 dotted", "cable organiser box", "desk fan Breeze",
    "thermal lunch bag", "HDMI adapter", "power strip 6-way", "kettle Steamline",
    "folding table", "storage crate", "microfiber cloth pack", "webcam HD720",
    "document tray", "bicycle helmet", "rain jacket", "fleece blanket",
]
TEST_PRODUCTS = [
    "porcelain teapot", "mechanical keyboard K7", "copper frying pan", "monitor arm Flex",
    "garden hose 20 m", "linen tablecloth", "smoke detector", "tool belt",
    "soundbar Cinema 2", "insulated travel mug", "ring binder set", "steel filing cabinet",
    "portable projector", "ladder 3-step", "hiking backpack", "desk organiser",
    "air purifier AP300", "wool scarf", "extension cord 10 m", "barcode scanner BS2",
]

COMPANIES = [
    "Brightwater Ltd", "Northfield Dental", "Kestrel Design", "Harbour Café", "Pine & Co",
    "Lumen Studio", "Riverside School", "Atlas Logistics", "Greenleaf Bakery", "Summit Physio",
    "Bluebell Nursery", "Orchid Hotel", "Vantage Legal", "Copperline Garage", "Meadow Vets",
]
STREETS = ["Harbour Road", "Mill Lane", "King Street", "Park Avenue", "Station Road", "Elm Close"]

NUMBER_WORDS = {
    1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight",
    9: "nine", 10: "ten", 11: "eleven", 12: "twelve", 15: "fifteen", 20: "twenty",
}

GREETINGS = [
    "Hi,", "Hello,", "Hello team,", "Dear Sales Team,", "Good morning,", "Good afternoon,",
    "Hi there,", "Dear Sir or Madam,", "Hey,", "To whom it may concern,", "Dear colleagues,",
]
SIGNOFFS = [
    "Best regards,", "Kind regards,", "Thanks,", "Many thanks,", "Cheers,", "Sincerely,",
    "Thank you,", "Regards,", "All the best,", "Warm wishes,",
]
SUBJECTS = ["New order", "Order request", "Purchase order", "Order", "Quick order", "Re: your catalogue"]

ORDER_TEMPLATES = [
    "I would like to order {qty} x {product}.",
    "Please send us {qty} units of the {product}.",
    "We need {qty} of your {product}.",
    "I'd like to place an order for the {product}, quantity {qty}.",
    "Can I get {qty} pieces of the {product}?",
    "Our team needs the {product} ({qty} units).",
    "Please add {qty} x {product} to a new order.",
    "I want to buy {qty} units of the {product}.",
    "This is an order for {qty} pieces of the {product}.",
    "Could you supply {qty} units of the {product}?",
    "We'd like {qty} of the {product}, please.",
    "Please book an order of {qty} x {product} for us.",
]
DATE_TEMPLATES = [
    "We need it delivered by {date}.",
    "Please deliver on {date}.",
    "The delivery date should be {date}.",
    "Delivery on {date} would be ideal.",
    "It has to arrive on {date}.",
    "Could it reach us on {date}?",
    "Please schedule the delivery for {date}.",
    "We would like delivery on {date}.",
]
EXPRESS_YES = [
    "Please ship it express.",
    "We need express delivery on this one.",
    "Could you use express shipping?",
    "This is urgent, so express shipping please.",
    "Please send it by express courier.",
    "Express delivery, please.",
]
EXPRESS_NO = [
    "Standard shipping is fine.",
    "No need for express delivery.",
    "Regular delivery works for us.",
    "Please use standard shipping.",
    "There is no rush, normal shipping is okay.",
    "Economy delivery is fine, no express needed.",
]
FILLERS = [
    "I hope you are well.",
    "Thanks for the quick service last time.",
    "Let me know if anything is unclear.",
    "Please confirm once the order is placed.",
    "We are setting up a new office and need a few things.",
    "Your catalogue was very helpful.",
    "Happy to pay by invoice as usual.",
    "A colleague recommended your shop.",
    "Please send the invoice to the usual address.",
]
DISTRACTORS = [
    "My customer number is {n5}.",
    "Our reference is PO-{n4}.",
    "You can call me on 555-{n4} if needed.",
    "Last year we bought {small} of these from you.",
    "Our office is at {n2} {street}.",
    "We have been customers for {small} years.",
    "We currently have {n2} people working at this site.",
    "Our previous order arrived on {other_date} without problems.",
    "The last invoice, dated {other_date}, has been paid.",
]


def date_text(d: dt.date, rng: random.Random) -> str:
    month = d.strftime("%B")
    style = rng.randrange(5)
    if style == 0:
        return d.isoformat()
    if style == 1:
        return f"{month} {d.day}, {d.year}"
    if style == 2:
        return f"{d.day} {month} {d.year}"
    if style == 3:
        return f"{d.strftime('%A')}, {month} {d.day}, {d.year}"
    return f"{d.strftime('%A')} {d.day} {month} {d.year}"


def qty_value(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.55:
        return rng.randint(1, 12)
    if r < 0.85:
        return rng.randint(13, 60)
    return rng.choice([75, 100, 120, 150, 200, 250, 300, 500])


def qty_text(q: int, rng: random.Random) -> str:
    if q in NUMBER_WORDS and rng.random() < 0.3:
        return NUMBER_WORDS[q]
    return str(q)


def random_date(rng: random.Random) -> dt.date:
    start = dt.date(2025, 1, 6)
    return start + dt.timedelta(days=rng.randrange(0, 720))


def make_email(rng: random.Random, customer_first: str, customer_last: str, product: str) -> tuple[str, dict]:
    full = f"{customer_first} {customer_last}"
    qty = qty_value(rng)
    delivery = random_date(rng)
    express = rng.random() < 0.5
    gold = {
        "customer": full,
        "product": product,
        "quantity": qty,
        "delivery_date": delivery.isoformat(),
        "express": express,
    }
    company = rng.choice(COMPANIES)

    for _ in range(200):
        order = rng.choice(ORDER_TEMPLATES).format(qty=qty_text(qty, rng), product=product)
        when = rng.choice(DATE_TEMPLATES).format(date=date_text(delivery, rng))
        ship = rng.choice(EXPRESS_YES if express else EXPRESS_NO)
        other = delivery - dt.timedelta(days=rng.randint(20, 300))
        fills = {
            "n5": rng.randint(10000, 99999),
            "n4": rng.randint(1000, 9999),
            "n2": rng.randint(2, 99),
            "small": rng.randint(2, 30),
            "street": rng.choice(STREETS),
            "other_date": date_text(other, rng),
        }
        extras = [d.format(**fills) for d in rng.sample(DISTRACTORS, rng.randint(0, 2))]
        extras += rng.sample(FILLERS, rng.randint(0, 2))

        # name placement: intro with full name + first-name sign-off, or full-name sign-off
        style = rng.randrange(3)
        intro = []
        if style == 0:
            intro = [rng.choice([f"My name is {full} from {company}.", f"This is {full} from {company}.",
                                 f"I'm {full}, office manager at {company}."])]
            signature = customer_first
        elif style == 1:
            signature = f"{full}\n{company}"
        else:
            signature = full

        body = [order, when, ship] + extras
        head, tail = body[:1], body[1:]
        rng.shuffle(tail)
        body = head + tail
        if rng.random() < 0.3 and len(body) > 1:
            # sometimes the order is not the first thing said
            body[0], body[1] = body[1], body[0]
        sentences = intro + body
        if rng.random() < 0.5 and len(sentences) > 3:
            cut = rng.randint(2, len(sentences) - 1)
            text = " ".join(sentences[:cut]) + "\n\n" + " ".join(sentences[cut:])
        else:
            text = " ".join(sentences)

        parts = []
        if rng.random() < 0.3:
            parts.append(f"Subject: {rng.choice(SUBJECTS)}")
        parts.append(rng.choice(GREETINGS))
        parts.append(text)
        parts.append(f"{rng.choice(SIGNOFFS)}\n{signature}")
        email = "\n\n".join(parts)
        n_words = len(email.split())
        if MIN_WORDS <= n_words <= MAX_WORDS:
            return email, gold
    raise RuntimeError("could not build an e-mail within the word range")


def completion_for(gold: dict) -> str:
    return json.dumps(gold, ensure_ascii=False, separators=(", ", ": "))


def build_split(rng: random.Random, n: int, surnames: list[str], products: list[str], split: str,
                extra_products: list[str] | None = None) -> list[dict]:
    rows = []
    seen = set()
    while len(rows) < n:
        first = rng.choice(FIRST_NAMES)
        last = rng.choice(surnames)
        if extra_products is not None and rng.random() < 0.5:
            product = rng.choice(extra_products)
        else:
            product = rng.choice(products)
        if (first, last, product) in seen:
            continue
        seen.add((first, last, product))
        email, gold = make_email(rng, first, last, product)
        rows.append(
            {
                "id": f"orders-{split}-{len(rows):04d}",
                "prompt": f"{INSTRUCTION}\n\n{email}",
                "completion": completion_for(gold),
            }
        )
    return rows


README = """\
# Order extraction (synthetic)

A structured-extraction task of our own design, generated by
`scripts/build_extraction_task.py` (seed {seed}). Do not edit by hand; re-run the script.

Each prompt is

```
{instruction}

<e-mail of {min_words}-{max_words} words>
```

and each completion is one line of JSON matching `schema.json` (JSON Schema draft 2020-12,
all five keys required, no other keys, `delivery_date` as `YYYY-MM-DD`):

```
{example}
```

| file | rows | approx. tokens (chars/4) |
|---|---|---|
| `train.jsonl` | {n_train} | ~{tok_train:,} |
| `test.jsonl` | {n_test} | ~{tok_test:,} |

Record format: `{{"id": "orders-train-0000", "prompt": ..., "completion": ...}}`.

## Generator

* **Customer**: first name + surname. Train and test use disjoint surname lists
  ({n_train_surnames} / {n_test_surnames}), so no customer name - and no customer/product
  combination - appears in both splits. The name appears as a full-name signature, a
  full-name signature with a company line, or in an introduction ("My name is ... from
  <company>") with a first-name-only signature.
* **Product**: a catalogue name copied verbatim into the e-mail. Train uses
  {n_train_products} products; test draws half of its rows from {n_test_products} further
  products never seen in training and half from the training products.
* **Quantity**: 1-500 (mostly 1-60), written as digits or, for small numbers, as words
  ("twelve").
* **Delivery date**: 2025-01-06 to 2026-12-26, written as ISO, "March 5, 2025",
  "5 March 2025", "Wednesday, March 5, 2025" or "Wednesday 5 March 2025".
* **Express**: stated explicitly either way ("Please ship it express." / "Standard shipping is
  fine."), about half the rows each.
* **Variation and distractors**: {n_greet} greetings, {n_sign} sign-offs, optional subject line,
  {n_order} order templates, {n_date} delivery templates, shuffled sentence order, paragraph
  breaks, 0-2 filler sentences and 0-2 distractors (customer numbers, PO numbers, phone numbers,
  street numbers, head counts, earlier quantities and earlier dates).

Every gold completion is validated against `schema.json` when the script runs.

## Licence

Generated data, released with tellkit under Apache-2.0 (see `LICENSE`). All names, companies
and orders are fictitious.
"""



def main() -> int:
    import jsonschema

    p = make_parser(__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    # Larger sets for the scale studies (scripts/run_study3.sh builds them): e.g. --train 1000 --name orders-1k
    # --out examples/runs/data writes examples/runs/data/orders-1k/, not the shipped orders/ examples and tests use.
    p.add_argument("--train", type=int, default=N_TRAIN, help="training examples (default %(default)s)")
    p.add_argument("--test", type=int, default=N_TEST, help="test examples (default %(default)s)")
    p.add_argument("--name", default="orders", help="sub-folder of --out to write (default %(default)s)")
    args = p.parse_args()
    out: Path = args.out / args.name

    assert not set(TRAIN_SURNAMES) & set(TEST_SURNAMES)
    assert not set(TRAIN_PRODUCTS) & set(TEST_PRODUCTS)
    rng = random.Random(args.seed)
    train = build_split(rng, args.train, TRAIN_SURNAMES, TRAIN_PRODUCTS, "train")
    test = build_split(rng, args.test, TEST_SURNAMES, TRAIN_PRODUCTS, "test", extra_products=TEST_PRODUCTS)

    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    validator = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    for row in train + test:
        gold = json.loads(row["completion"])
        validator.validate(gold)
        email = row["prompt"].split("\n\n", 1)[1]
        assert gold["customer"].split()[0] in email and gold["product"] in email, row["id"]
        assert MIN_WORDS <= len(email.split()) <= MAX_WORDS, row["id"]
    train_customers = {json.loads(r["completion"])["customer"] for r in train}
    test_customers = {json.loads(r["completion"])["customer"] for r in test}
    assert not train_customers & test_customers
    print(f"validated {len(train) + len(test)} gold completions against schema.json")

    n_train, tok_train = write_jsonl(out / "train.jsonl", train)
    n_test, tok_test = write_jsonl(out / "test.jsonl", test)
    write_text(out / "schema.json", json.dumps(SCHEMA, indent=2, ensure_ascii=False) + "\n")
    write_text(
        out / "README.md",
        README.format(
            seed=args.seed,
            instruction=INSTRUCTION,
            min_words=MIN_WORDS,
            max_words=MAX_WORDS,
            example=train[0]["completion"],
            n_train=n_train,
            tok_train=tok_train,
            n_test=n_test,
            tok_test=tok_test,
            n_train_surnames=len(TRAIN_SURNAMES),
            n_test_surnames=len(TEST_SURNAMES),
            n_train_products=len(TRAIN_PRODUCTS),
            n_test_products=len(TEST_PRODUCTS),
            n_greet=len(GREETINGS),
            n_sign=len(SIGNOFFS),
            n_order=len(ORDER_TEMPLATES),
            n_date=len(DATE_TEMPLATES),
        ),
    )
    write_text(out / "LICENSE", generated_licence("build_extraction_task.py"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
