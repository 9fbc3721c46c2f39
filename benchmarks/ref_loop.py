"""A plain peft + torch LoRA loop: the reference tellkit's defaults are measured against (issue 12).

Trains LoRA on a messages-format task JSONL (loss on the assistant turn only, N examples per optimizer
step, padded), then greedy-decodes the test set and scores it with tellkit's own metric functions, so
the numbers compare with `tellkit run`'s. No tellkit trainer, collator, packing or scheduler is used.

    python benchmarks/ref_loop.py examples/data/tickets/train.jsonl examples/data/tickets/test.jsonl \
        --schema examples/data/tickets/schema.json --lr 5e-4 --epochs 2 --per-step 8
"""

import argparse  # noqa: E401
import json
import random
import sys
import time
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer, get_scheduler

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from tellkit import hardware  # noqa: E402
from tellkit.metrics import compute  # noqa: E402
from tellkit.models.resolve import resolve_model  # noqa: E402

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("train"), p.add_argument("test")
p.add_argument("--model", default="smollm2-135m-instruct"), p.add_argument("--schema")
p.add_argument("--lr", type=float, default=5e-4), p.add_argument("--epochs", type=int, default=2)
p.add_argument("--per-step", type=int, default=8, help="examples per optimizer step (one padded batch)")
p.add_argument("--r", type=int, default=8), p.add_argument("--alpha", type=float, default=16)
p.add_argument("--dropout", type=float, default=0.0), p.add_argument("--scheduler", default="constant")
p.add_argument("--warmup", type=int, default=0), p.add_argument("--max-new-tokens", type=int, default=48)
p.add_argument("--seed", type=int, default=0), p.add_argument("--out", help="write the results as JSON here")
a = p.parse_args()
torch.manual_seed(a.seed)
print(f"cpu: {hardware.cpu()}, torch kernels: {torch.backends.cpu.get_cpu_capability()}, "
      f"threads: {torch.get_num_threads()}, dtype: float32")
path = str(resolve_model(a.model))
tok = AutoTokenizer.from_pretrained(path)
model = get_peft_model(AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32),
                       LoraConfig(r=a.r, lora_alpha=a.alpha, lora_dropout=a.dropout, target_modules="all-linear"))
rows = lambda f: [json.loads(line)["messages"] for line in open(f) if line.strip()]  # noqa: E731
prompt = lambda m: tok.apply_chat_template(m[:-1], tokenize=False, add_generation_prompt=True)  # noqa: E731
train, test = rows(a.train), rows(a.test)
# labels: the tokens the assistant turn adds (its text and end-of-turn), as tellkit supervises them
data = []
for m in train:
    ids = tok(tok.apply_chat_template(m, tokenize=False), add_special_tokens=False)["input_ids"]
    n_prompt = len(tok(prompt(m), add_special_tokens=False)["input_ids"])
    data.append((ids, [-100] * n_prompt + ids[n_prompt:]))
steps_per_epoch = -(-len(data) // a.per_step)
total = steps_per_epoch * a.epochs
opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=a.lr, weight_decay=0.0)
sched = get_scheduler(a.scheduler, opt, num_warmup_steps=a.warmup, num_training_steps=total)
rng, lrs, tokens, slots, start = random.Random(a.seed), [], 0, 0, time.perf_counter()
model.train()
for epoch in range(a.epochs):
    order = rng.sample(range(len(data)), len(data))
    for s in range(0, len(order), a.per_step):
        batch = [data[i] for i in order[s:s + a.per_step]]
        width = max(len(ids) for ids, _ in batch)
        pad = lambda x, v: x + [v] * (width - len(x))  # noqa: E731
        ids = torch.tensor([pad(i, tok.pad_token_id) for i, _ in batch])
        out = model(input_ids=ids, attention_mask=torch.tensor([pad([1] * len(i), 0) for i, _ in batch]),
                    labels=torch.tensor([pad(lab, -100) for _, lab in batch]))
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        lrs.append(sched.get_last_lr()[0])
        opt.step(), sched.step(), opt.zero_grad()
        tokens, slots = tokens + sum(len(i) for i, _ in batch), slots + width * len(batch)
        print(f"epoch {epoch} step {len(lrs)}/{total} loss {out.loss.item():.4f} lr {lrs[-1]:.2e}", flush=True)
train_s = time.perf_counter() - start
model = model.merge_and_unload().eval()
tok.padding_side, outputs, start = "left", [], time.perf_counter()
with torch.no_grad():
    for s in range(0, len(test), 16):
        enc = tok([prompt(m) for m in test[s:s + 16]], return_tensors="pt", padding=True, add_special_tokens=False)
        gen = model.generate(**enc, max_new_tokens=a.max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
        outputs += tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
scores = compute(["json"], outputs, [m[-1]["content"] for m in test], {"json_schema": a.schema} if a.schema else {})
js = {k: round(v["value"], 3) for k, v in scores["json"]["scores"].items()}
result = {"steps": len(lrs), "examples_per_step": a.per_step, "train_tokens": tokens, "padded_slots": slots,
          "mean_lr": sum(lrs) / len(lrs), "train_s": round(train_s, 1), "tok_per_s": round(tokens / train_s, 1),
          "eval_s": round(time.perf_counter() - start, 1), "json": js, "sample": outputs[:3], "args": vars(a)}
print(json.dumps(result, indent=1))
if a.out:
    Path(a.out).write_text(json.dumps(result, indent=1) + "\n")
