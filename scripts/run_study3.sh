#!/usr/bin/env bash
# The third round behind docs/results.md (issue 28): the paper's headline at 10^4 task tokens.
#   TELL at 10^4 task tokens, ratios 0/10/30/100, each with its compute-matched sft-matched twin;
#   SFT with the same epochs at 10^4, 3x10^4 and 10^5 task tokens (the data-efficiency multiplier);
#   base; every cell also scored on the out-of-distribution suite (general_ood) and the held-out loss.
# Two tasks, on larger generated sets (built on first use into examples/runs/data, not shipped: scripts/build_extraction_task.py --train 1000 --name
# orders-1k, scripts/build_ticket_task.py --train 1200 --name tickets-1k; ~130k and ~90k tokens by chars/4). A ratio-100 cell trains ~10^6 tokens:
# 30-60 min: our cells trained at 450-600 tok/s in some sessions and 280-310 in others, on 2 AVX512-bf16 cores
# (bf16 autocast, no AMX; archived sweep.json has each cell's wall_seconds), so one seed of one task is ~1.5-3 h.
#
#   nohup bash scripts/run_study3.sh orders 0 > examples/runs/study3-orders-s0.log 2>&1 &
#
# ONLY=method=sft,base runs a part of a seed first (e.g. the short cells when little time is left).
# On a fresh checkout (run folders are not committed) first put the archived cells back, so they are skipped:
#   .venv/bin/python scripts/restore_cells.py docs/results/tickets-10k examples/runs/study3/tickets
# Arguments: TASK (orders | tickets) and SEEDS (default "0 1 2"); one seed per sweep invocation (--only), so
# finished seeds exist early. Rerunning skips finished cells and resumes an interrupted one from its checkpoint.
# The general data (~580k tokens) is less than ratio 100 x 10^4 needs: it is repeated (mix.allow_general_repeats),
# about twice at ratio 100, and docs/results.md says so.
set -uo pipefail
cd "$(dirname "$0")/.."
TK=${TK:-$PWD/.venv/bin/tellkit}
TASK=${1:?usage: run_study3.sh orders|tickets|anchor|gemma|ratio300 [SEEDS]}
SEEDS=${2:-0 1 2}
build_data() {  # the larger task sets, generated (deterministic, seed 0) on first use into examples/runs/data
  [ -s examples/runs/data/orders-1k/train.jsonl ] || .venv/bin/python scripts/build_extraction_task.py \
    --out examples/runs/data --train 1000 --test 200 --name orders-1k >/dev/null || exit 2
  [ -s examples/runs/data/tickets-1k/train.jsonl ] || .venv/bin/python scripts/build_ticket_task.py \
    --out examples/runs/data --train 1200 --test 200 --name tickets-1k >/dev/null || exit 2
}
quiet() { grep --line-buffered -vE "it/s\]|s/it\]|ex/s\]|s/ex\]|cell/s" || true; }
COMMON="train.epochs=1 train.batch_size=4 train.lr=5e-4 lora.dropout=0 mix.allow_general_repeats=true"
ORDERS="examples/orders.yaml task.path=runs/data/orders-1k/train.jsonl task.test_path=runs/data/orders-1k/test.jsonl
  eval.json_schema=runs/data/orders-1k/schema.json train.max_length=512 eval.max_new_tokens=64 eval.limit=100
  eval.metrics=[json,general] compare.score=json/field_exact"
if [ "$TASK" = anchor ] || [ "$TASK" = gemma ]; then build_data; fi
if [ "$TASK" = anchor ]; then
  # The paper's second mechanism, at one cell (Orders, 10^4 task tokens, ratio 30): tell with the handwritten
  # anchor vs tell-no-anchor (the same mixture without it), then tell with the best anchor `tellkit anchor
  # draft` + `rank` find on the base model. ~1.5 h per seed.
  OUT=examples/runs/study3/anchor
  SEEDLIST=[${SEEDS// /,}]
  # shellcheck disable=SC2086
  $TK compare $ORDERS $COMMON task.token_budget=10000 mix.ratio=30 compare.methods=[tell,tell-no-anchor] \
    compare.seeds=$SEEDLIST output.dir=runs/study3/anchor/handwritten 2>&1 | quiet
  if [ ! -s $OUT/drafted/anchors_ranked.json ]; then
    # shellcheck disable=SC2086
    $TK anchor draft $ORDERS --n 8 --out $OUT/drafted/anchors.txt 2>&1 | quiet
    # shellcheck disable=SC2086
    $TK anchor rank $ORDERS --anchors $OUT/drafted/anchors.txt --out $OUT/drafted 2>&1 | quiet
  fi
  best=$(.venv/bin/python -c "import json,sys; print(json.load(open(sys.argv[1]))['ranked'][0]['anchor'])" \
    $OUT/drafted/anchors_ranked.json)
  printf '%s\n' "$best" > $OUT/drafted/best.txt
  # shellcheck disable=SC2086
  $TK compare $ORDERS $COMMON task.token_budget=10000 mix.ratio=30 compare.methods=[tell] anchor.text=null \
    anchor.file=runs/study3/anchor/drafted/best.txt compare.seeds=$SEEDLIST output.dir=runs/study3/anchor/drafted-best \
    2>&1 | quiet
  echo "=== $(date -u +%H:%M:%S) anchor done"; exit 0
fi
if [ "$TASK" = ratio300 ]; then
  # Ratio 300 at 10^4 task tokens, one seed, on Orders: the task where TELL came closest to sft-matched at seed 0
  # (0.10 field accuracy behind at ratios 10-100, against 0.48 on tickets). ~3M training tokens per cell (~1.5 h
  # each here); the general data (~580k tokens) is repeated ~5 times (mix.allow_general_repeats), and
  # docs/results.md says so. Base is evaluated again in this folder so its report stands alone.
  build_data
  # shellcheck disable=SC2086
  $TK sweep $ORDERS $COMMON sweep.task_tokens=[10000] sweep.ratios=[300] sweep.methods=[tell,sft-matched,base] \
    sweep.seeds=[0] sweep.score=json/field_exact sweep.max_train_tokens=null output.dir=runs/study3/orders-r300 \
    2>&1 | quiet
  echo "=== $(date -u +%H:%M:%S) ratio300 done"; exit 0
fi
if [ "$TASK" = gemma ]; then
  # A second model: Gemma-3-270M, tell vs sft-matched at ratios 0 and 30, 10^3 task tokens (~3.4x SmolLM2's cost).
  for seed in $SEEDS; do
    echo "=== $(date -u +%H:%M:%S) gemma seed $seed"
    # shellcheck disable=SC2086
    $TK sweep $ORDERS $COMMON model.name=gemma3-270m eval.limit=40 sweep.task_tokens=[1000] sweep.ratios=[0,30] \
      sweep.methods=[tell,sft-matched,base] sweep.seeds=[0,1,2] sweep.score=json/field_exact \
      output.dir=runs/study3/gemma --only seed=$seed 2>&1 | quiet
  done
  exit 0
fi
case $TASK in
  # each task's own preset (its anchor, schema and lengths); the demo's speed-ups are undone for tickets
  orders)  CFG=examples/orders.yaml; DATA=runs/data/orders-1k; SCORE=json/field_exact  # strict saturates at 10^4
           EXTRA="train.max_length=512 eval.max_new_tokens=64" ;;
  tickets) CFG=examples/demo.yaml; DATA=runs/data/tickets-1k; SCORE=json/field_exact
           EXTRA="train.max_length=256 eval.max_new_tokens=48 eval.general_limit=null eval.general_score=null general.heldout_path=data/general/heldout.jsonl" ;;
  *) echo "error: TASK must be orders, tickets, anchor, gemma or ratio300" >&2; exit 2 ;;
esac
build_data
ARGS="$CFG task.path=$DATA/train.jsonl task.test_path=$DATA/test.jsonl eval.json_schema=$DATA/schema.json
  $COMMON eval.limit=100 $EXTRA eval.metrics=[json,general]
  sweep.task_tokens=[10000,30000,100000] sweep.mixed_task_tokens=[10000] sweep.ratios=[0,10,30,100]
  sweep.methods=[tell,sft,sft-matched,base] sweep.score=$SCORE sweep.max_train_tokens=null
  output.dir=runs/study3/$TASK"
for seed in $SEEDS; do
  echo "=== $(date -u +%H:%M:%S) $TASK seed $seed"
  # shellcheck disable=SC2086
  $TK sweep $ARGS --only seed=$seed ${ONLY:+--only $ONLY} 2>&1 | quiet
done
echo "=== $(date -u +%H:%M:%S) $TASK seeds $SEEDS done"
