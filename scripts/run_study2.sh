#!/usr/bin/env bash
# The second-round slice behind docs/results.md "Second round": Orders at 10^3 task tokens, ratios 0/10/30/100,
# tell vs sft-matched vs sft vs base, 3 seeds; every cell and base also scored on the default out-of-distribution
# suite (eval.general_tasks: WordNet + docstrings, all 1,500 items; ~45 min per seed on 2 AVX512-bf16 cores,
# of which ~2 min per evaluated model is that suite). In the background:
#   nohup bash scripts/run_study2.sh > examples/runs/study2.log 2>&1 &
# One seed per invocation (--only), so partial results exist early; rerunning skips finished cells.
# Then: cp examples/runs/study2/orders/{plan.json,sweep.json,sweep.csv,report.md,*.png} docs/results/orders-ood/
set -uo pipefail
cd "$(dirname "$0")/.."
TK=${TK:-$PWD/.venv/bin/tellkit}
ARGS="examples/orders.yaml train.epochs=1 train.batch_size=4 train.lr=5e-4 lora.dropout=0
  eval.limit=40 eval.max_new_tokens=64 sweep.task_tokens=[1000] sweep.ratios=[0,10,30,100]
  sweep.seeds=[0,1,2] sweep.methods=[tell,sft,sft-matched,base] sweep.score=json/strict sweep.max_train_tokens=null
  output.dir=runs/study2/orders"
for seed in 0 1 2; do
  echo "=== $(date -u +%H:%M:%S) seed $seed"
  # shellcheck disable=SC2086
  $TK sweep $ARGS --only seed=$seed 2>&1 | grep --line-buffered -vE "it/s\]|s/it\]|ex/s\]|s/ex\]|cell/s"
done
echo "=== $(date -u +%H:%M:%S) all done"
