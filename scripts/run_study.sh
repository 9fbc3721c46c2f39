#!/usr/bin/env bash
# The reproduction study behind docs/results.md, sized for a 2-core CPU (~45 minutes with nothing
# else running). Run it in the background:
#   nohup bash scripts/run_study.sh > examples/runs/study.log 2>&1 &
# Every step is resumable: rerunning skips finished cells.
set -euo pipefail
cd "$(dirname "$0")/.."
TK=${TK:-.venv/bin/tellkit}
step() { echo "=== $(date -u +%H:%M:%S) $*"; }
quiet() { grep --line-buffered -vE "it/s\]|step/s|ex/s\]|s/step|s/ex\]" || true; }

if [ ! -f examples/runs/quickstart/report.md ]; then
  step quickstart
  /usr/bin/time -f "quickstart wall %e s, peak RSS %M KiB" $TK run examples/quickstart.yaml --overwrite 2>&1 | quiet
fi

# Small packed batches: with packing a step holds batch_size x max_length tokens, so a tiny task
# budget needs small batches to get more than a handful of optimizer steps.
ORDERS="task.token_budget=1000 mix.ratio=5 eval.limit=40 eval.max_new_tokens=64 train.lr=5e-4 train.epochs=2 train.batch_size=1"
step orders compare
$TK compare examples/orders.yaml $ORDERS compare.seeds=[0,1] output.dir=runs/study/orders-compare 2>&1 | quiet

HALU="task.token_budget=1000 mix.ratio=5 eval.limit=10 eval.max_new_tokens=80 train.max_length=768 train.batch_size=1"
step halu compare
$TK compare examples/halu-cot-json.yaml $HALU compare.seeds=[0,1] output.dir=runs/study/halu-compare 2>&1 | quiet

step halu sweep
$TK sweep examples/halu-cot-json.yaml $HALU sweep.task_tokens=[500,1000] sweep.ratios=[0,5] \
  sweep.methods=[tell,sft] sweep.seeds=[0] output.dir=runs/study/halu-sweep 2>&1 | quiet

step probe
$TK probe examples/quickstart.yaml probe.n_queries=32 --run examples/runs/quickstart 2>&1 | quiet
step done
