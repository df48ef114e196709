#!/usr/bin/env bash
# Sentiment recipe sweep at fixed step counts, meant for a GPU (hours on the CPU).
#
#   bash bench/sentiment_sweep.sh OUT_DIR
#
# bench/sentiment.sh spends 17 CPU minutes on LM pretraining (4,172 steps of batch 16 on
# the benchmark machine) and 9 on fine-tuning (1,352 steps of batch 64). This script runs
# that recipe by step count instead of minutes -- so a GPU replays the CPU's 27 minutes in
# about two and a half, and the whole sweep in about six -- next to variants of it: fine-tuning learning rate,
# length, batch and dropout, a second seed, and three times the pretraining (12,000
# steps). Each fine-tune selects on the dev file every 150 steps, as the script does.
# Prints, per run, dev macro-recall at every evaluation and the best one; exits non-zero
# if any run failed (a failed pretraining stops the sweep at once).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: bash bench/sentiment_sweep.sh OUT_DIR}
SHARED=${SHARED:-../shared/data}
DEVICE=${DEVICE:-cuda}
VOCAB=${VOCAB:-4096}
PY=${PYTHON:-python}
[ -d "$SHARED" ] || { echo "error: $SHARED not found (set SHARED=path/to/shared/data)" >&2; exit 2; }
DEV="$SHARED/semeval2017-4a/twitter-2016devtest-A.tsv"
source bench/sentiment_recipe.sh  # LM_FLAGS, FT_FLAGS: the stages of bench/sentiment.sh
mkdir -p "$OUT"
rm -f "$OUT/FAILED"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}  # several runs share the machine's cores

run() {  # run NAME train.py-flags...: train into OUT/NAME, output in OUT/NAME.log
    local name=$1
    shift
    "$PY" train.py "$@" --device "$DEVICE" --dtype bfloat16 --log-interval 500 \
        --out "$OUT/$name" > "$OUT/$name.log" 2>&1 && return
    echo "FAILED: $name" >&2
    tail -5 "$OUT/$name.log" >&2
    echo "$name" >> "$OUT/FAILED"
    return 1
}
lm() {  # lm NAME flags...: pretrain as bench/sentiment.sh does
    local name=$1
    shift
    run "$name" "${LM_FLAGS[@]}" --eval-interval 2000 "$@"
}
ft() {  # ft NAME LM_NAME flags...: fine-tune as bench/sentiment.sh does, flags override
    local name=$1 init=$2
    shift 2
    run "$name" "${FT_FLAGS[@]}" --init-from "$OUT/$init/best.pt" --max-steps 1352 "$@"
}
report() {
    for log in "$@"; do
        echo "$(basename "$log" .log): $(grep -o 'eval step.*' "$log" | awk '{print $9}' | tr '\n' ' ')"
        tail -1 "$log"
    done
}

lm lm3x --max-steps 12000 &
lm lm --max-steps 4172  # the fine-tunes below need it: set -e stops here if it failed
ft ft lm &
ft ft-seed2 lm --seed 2 &
ft ft-4000 lm --max-steps 4000 &
ft ft-lr2e-4 lm --lr 2e-4 &
ft ft-lr1e-3 lm --lr 1e-3 &
ft ft-dropout0.3 lm --dropout 0.3 &
ft ft-lr2e-4-4000 lm --lr 2e-4 --max-steps 4000 &
ft ft-batch32 lm --batch-size 32 --max-steps 2700 &
wait
ft lm3x-ft lm3x &
ft lm3x-ft-4000 lm3x --max-steps 4000 &
ft lm3x-ft-lr2e-4-4000 lm3x --lr 2e-4 --max-steps 4000 &
wait
report "$OUT"/lm.log "$OUT"/lm3x.log
report "$OUT"/ft*.log "$OUT"/lm3x-ft*.log
[ ! -e "$OUT/FAILED" ] || { echo "failed runs: $(tr '\n' ' ' < "$OUT/FAILED")" >&2; exit 1; }
