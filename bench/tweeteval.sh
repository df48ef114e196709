#!/usr/bin/env bash
# TweetEval, every task from one pretrained trunk, from nothing, in at most 60 CPU minutes.
#
#   bash bench/tweeteval.sh OUT_DIR
#
# 1. reads ../shared/data and trains a byte-level BPE tokenizer (VOCAB, default 4,096) and
#    one language model (4 layers x 4 heads x 256, bf16) on the train splits of every
#    TweetEval task and the SemEval-2017 files except twitter-2016devtest-A.tsv: no
#    validation post of any task is read before its task selects on it;
# 2. fine-tunes one classifier per task from that trunk with --task classify, selected on
#    the task's own val split by its official metric (macro-F1 for emoji, emotion, hate and
#    offensive, the ironic class's F1 for irony, the mean F1 of against and favor for
#    stance); the five stance targets share one model, trained and selected on their posts
#    pooled (as TweetEval scores stance), saved under each target's name; two-class tasks
#    keep the threshold best on val;
# 3. sentiment: bench/sentiment.sh's fine-tuning recipe (SemEval-2017 files, class weights,
#    macro-recall on twitter-2016devtest-A.tsv) from the same trunk;
# 4. leaves OUT_DIR/<task>.pt (emoji, emotion, hate, irony, offensive, sentiment) and
#    OUT_DIR/stance-<target>.pt, each classifying raw posts one per line
#    (sample.py --ckpt OUT_DIR/hate.pt --classify-file posts.txt), and prints the val
#    scores with their mean over the seven tasks ("All").
# Wall-clock split: PRETRAIN_MIN (15) + EMOJI_MIN (5) + SENTIMENT_MIN (9) + 5 x TASK_MIN (3)
# of training = 44 minutes, plus reading, tokenizer training and evaluation (~10 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: bash bench/tweeteval.sh OUT_DIR}
SHARED=${SHARED:-../shared/data}
PRETRAIN_MIN=${PRETRAIN_MIN:-15}
EMOJI_MIN=${EMOJI_MIN:-5}
SENTIMENT_MIN=${SENTIMENT_MIN:-9}
TASK_MIN=${TASK_MIN:-3}
VOCAB=${VOCAB:-4096}
PY=${PYTHON:-python}
[ -d "$SHARED" ] || { echo "error: $SHARED not found (set SHARED=path/to/shared/data)" >&2; exit 2; }
TE="$SHARED/tweeteval"
DEV="$SHARED/semeval2017-4a/twitter-2016devtest-A.tsv"
mkdir -p "$OUT"
start=$(date +%s)

source bench/stage.sh  # train_stage NAME FLAGS...: train.py into $OUT/NAME

echo "== 1. tokenizer + language-model pretraining ($PRETRAIN_MIN min)"
train_stage lm --task lm --data "$SHARED" --data-splits train --val "$DEV" \
    --preset medium --vocab-size "$VOCAB" --batch-size 16 \
    --max-minutes "$PRETRAIN_MIN" --eval-interval 1000000
tail -1 "$OUT/lm.log"

# The shared fine-tuning settings (bench/sentiment.sh's); EVERY: steps between evaluations.
finetune() {
    local name=$1 minutes=$2 every=$3
    shift 3
    train_stage "$name" --init-from "$OUT/lm/best.pt" --class-weights --batch-size 64 \
        --lr 5e-4 --warmup-steps 100 --dropout 0.1 --eval-interval "$every" \
        --max-minutes "$minutes" "$@"
    cp "$OUT/$name/best.pt" "$OUT/$name.pt"
    tail -1 "$OUT/$name.log"
}

echo "== 2. one classifier per TweetEval task"
finetune emoji "$EMOJI_MIN" 150 --task classify --data "$TE/emoji" --val "$TE/emoji"
for task in emotion hate irony offensive; do
    finetune "$task" "$TASK_MIN" 50 --task classify --data "$TE/$task" --val "$TE/$task"
done
finetune stance "$TASK_MIN" 50 --task classify --data "$TE/stance" --val "$TE/stance"
targets=$(cd "$TE/stance" && for d in */; do echo "${d%/}"; done)
for target in $targets; do
    cp "$OUT/stance.pt" "$OUT/stance-$target.pt"
done

echo "== 3. sentiment (bench/sentiment.sh's fine-tuning)"
finetune sentiment "$SENTIMENT_MIN" 150 --task sentiment --data "$SHARED/semeval2017-4a" \
    --val "$DEV"

echo "== 4. validation scores"
score() {  # task, checkpoint, labeled data, split: one line "task metric score"
    "$PY" sample.py --ckpt "$2" --evaluate "$3" --split "$4" --format json 2>> "$OUT/scores.log" \
        | "$PY" -c "import json, sys; r = json.load(sys.stdin); print('$1', r['metric'], r['score'], r['n'])"
}
{
    for task in emoji emotion hate irony offensive; do
        score "$task" "$OUT/$task.pt" "$TE/$task" val
    done
    score stance "$OUT/stance.pt" "$TE/stance" val  # the five targets pooled
    score sentiment "$OUT/sentiment.pt" "$DEV" test  # a file: read whole
} > "$OUT/scores.txt"
echo "wall time: $(( $(date +%s) - start )) s"
"$PY" - "$OUT/scores.txt" <<'PY'
import sys
# TweetEval (Barbieri et al., 2020), Table 2: test-set scores of the classical baselines
BASELINES = {"emoji": (29.3, 25.8, 24.7), "emotion": (64.7, 65.2, 66.0),
             "hate": (36.7, 50.6, 52.6), "irony": (61.7, 63.1, 62.8),
             "offensive": (52.3, 73.4, 71.7), "sentiment": (62.9, 62.9, 58.3),
             "stance": (67.3, 65.4, 59.4), "All": (53.5, 58.1, 56.5)}
rows = [line.split() for line in open(sys.argv[1]) if line.strip()]
print("| task | metric | val posts | minillm (val) | SVM | FastText | LSTM (test) |")
print("|---|---|---:|---:|---:|---:|---:|")
for task, metric, score, n in rows:
    svm, fasttext, lstm = BASELINES[task]
    print(f"| {task} | {metric} | {int(n):,} | {100 * float(score):.1f} | {svm} | {fasttext} | {lstm} |")
mean = 100 * sum(float(r[2]) for r in rows) / len(rows)
print(f"| All | mean of the {len(rows)} | | {mean:.1f} | 53.5 | 58.1 | 56.5 |")
print(f"tweeteval_all_val={mean:.1f}")
PY
