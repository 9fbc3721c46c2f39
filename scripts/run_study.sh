#!/usr/bin/env bash
# The reproduction study behind docs/results.md, sized for a 2-core CPU: two chains (Halu-CoT-JSON and the
# Orders extraction task) run side by side with one torch thread each, about 3 hours. Run it in the background:
#   nohup bash scripts/run_study.sh > examples/runs/study/study.log 2>&1 &
# Every step is resumable: rerunning skips finished cells and continues interrupted ones from their checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
TK=${TK:-$PWD/.venv/bin/tellkit}
OUT=examples/runs/study
mkdir -p $OUT
step() { echo "=== $(date -u +%H:%M:%S) $*"; }
quiet() { grep --line-buffered -vE "it/s\]|step/s|ex/s\]|s/step|s/ex\]" || true; }

# Shared by both tasks:
# - one pass over the mixture (epochs=1) with small packed batches (1 row per step), so a 10^3-token task
#   set still gets optimizer steps; lr 5e-4; LoRA dropout 0 (a third faster on CPU);
# - the grid: 10^3 and 10^4 task tokens x ratios 0/3/10/30 x 3 seeds; cells over 40k training tokens are
#   left out (10^4 x ratio 10 and 30), so ratio 30 runs at 10^3 task tokens and ratio 3 at 10^4;
# - sft-matched is each TELL cell's twin: the task data alone, trained for the same optimizer steps
#   (it separates "more general data" from "more training");
# - curves and the multiplier use strict JSON adherence, the paper's structured-output metric.
COMMON="train.epochs=1 train.batch_size=1 train.lr=5e-4 lora.dropout=0 sweep.task_tokens=[1000,10000]
  sweep.ratios=[0,3,10,30] sweep.seeds=[0,1,2] sweep.max_train_tokens=40000
  sweep.methods=[tell,sft,sft+anchor,sft-matched,general-only,base] sweep.score=json/strict"
HALU="train.max_length=1024 eval.limit=30 eval.max_new_tokens=96"
ORDERS="train.max_length=512 eval.limit=40 eval.max_new_tokens=64"

chain() {  # name preset overrides...
  local name=$1 preset=$2; shift 2
  step "$name sweep"
  # shellcheck disable=SC2086
  OMP_NUM_THREADS=1 $TK sweep "$preset" $COMMON "$@" output.dir=runs/study/$name-sweep 2>&1 | quiet
  step "$name probe (base model and TELL adapter at 10^4 task tokens, ratio 3, seed 0)"
  # shellcheck disable=SC2086
  OMP_NUM_THREADS=1 $TK probe "$preset" $COMMON "$@" output.dir=runs/study/$name-sweep probe.n_queries=48 \
    --run $OUT/$name-sweep/cells/tell-t10000-r3-s0 --out $OUT/$name-probe 2>&1 | quiet
  step "$name done"
}

chain halu examples/halu-cot-json.yaml $HALU > $OUT/halu.log 2>&1 &
chain orders examples/orders.yaml $ORDERS > $OUT/orders.log 2>&1 &
wait
step "study done"
