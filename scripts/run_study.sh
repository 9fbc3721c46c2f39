#!/usr/bin/env bash
# The reproduction study behind docs/results.md: run in the background, e.g.
#   nohup bash scripts/run_study.sh > examples/runs/study.log 2>&1 &
# Every step is resumable: rerunning skips finished cells.
set -euo pipefail
cd "$(dirname "$0")/.."
TK=${TK:-.venv/bin/tellkit}
step() { echo "=== $(date -u +%H:%M:%S) $*"; }

step quickstart
/usr/bin/time -v $TK run examples/quickstart.yaml --overwrite 2>&1 | grep -vE "it/s\]|step/s|ex/s\]" || true

HALU="task.token_budget=1500 mix.ratio=10 eval.limit=30 eval.max_new_tokens=80 train.max_length=768 train.batch_size=4"
step halu compare
$TK compare examples/halu-cot-json.yaml $HALU compare.seeds=[0,1,2] output.dir=runs/study/halu-compare

ORDERS="task.token_budget=1500 mix.ratio=10 eval.limit=60 eval.max_new_tokens=64 train.lr=5e-4 train.epochs=2"
step orders compare
$TK compare examples/orders.yaml $ORDERS compare.seeds=[0,1,2] output.dir=runs/study/orders-compare

step orders sweep
$TK sweep examples/orders.yaml $ORDERS sweep.task_tokens=[400,1500] sweep.ratios=[0,3,10] \
  sweep.methods=[tell,sft] sweep.seeds=[0,1] output.dir=runs/study/orders-sweep

step halu sweep
$TK sweep examples/halu-cot-json.yaml $HALU sweep.task_tokens=[600,1500] sweep.ratios=[0,3,10] \
  sweep.methods=[tell,sft] sweep.seeds=[0,1] output.dir=runs/study/halu-sweep
step done
