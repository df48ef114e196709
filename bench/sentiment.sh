#!/usr/bin/env bash
# Sentiment, end to end: the best minillm sentiment model from nothing, in 30 CPU minutes.
#
#   bash bench/sentiment.sh OUT_DIR
#
# 1. reads and normalises ../shared/data (@user, http, HTML entities, NFC), trains a
#    byte-level BPE tokenizer (VOCAB, default 4,096) on the training posts;
# 2. pretrains a language model (4 layers x 4 heads x 256, bf16) on every post except
#    twitter-2016devtest-A.tsv -- SemEval and all TweetEval tasks, labels ignored -- with
#    the objective OBJECTIVE (causal, masked or joint; default causal);
# 3. optionally (EMOJI_MIN > 0) fine-tunes the trunk and a 20-class head on TweetEval
#    emoji prediction (45,000 tweets), selecting on emoji's own val split; measured not to
#    help at this budget (BENCHMARKS.md), so off by default;
# 4. fine-tunes the trunk and a fresh 3-class head on the labeled SemEval-2017 files except
#    twitter-2016devtest-A.tsv, with inverse-frequency class weights (macro-recall counts
#    every class alike), reading each post as CLASSIFIER_ATTENTION says (causal or
#    bidirectional; default causal), selecting the checkpoint with the best macro-recall
#    on that file (SEED, default 1337, seeds both stages);
# 5. leaves the selected model at OUT_DIR/sentiment.pt, prints its dev report, and ends
#    with the line `dev_macro_recall=<number>`.
# Wall-clock split: PRETRAIN_MIN (default 17) + EMOJI_MIN (default 0, which skips step 3)
# + FINETUNE_MIN (9) of training, plus about two minutes of reading, tokenizer training
# and evaluation.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: bash bench/sentiment.sh OUT_DIR}
SHARED=${SHARED:-../shared/data}
PRETRAIN_MIN=${PRETRAIN_MIN:-17}
EMOJI_MIN=${EMOJI_MIN:-0}
FINETUNE_MIN=${FINETUNE_MIN:-9}
VOCAB=${VOCAB:-4096}
OBJECTIVE=${OBJECTIVE:-causal}
CLASSIFIER_ATTENTION=${CLASSIFIER_ATTENTION:-causal}
SEED=${SEED:-1337}
PY=${PYTHON:-python}
[ -d "$SHARED" ] || { echo "error: $SHARED not found (set SHARED=path/to/shared/data)" >&2; exit 2; }
DEV="$SHARED/semeval2017-4a/twitter-2016devtest-A.tsv"
mkdir -p "$OUT"
start=$(date +%s)

source bench/stage.sh  # train_stage NAME FLAGS...: train.py into $OUT/NAME

echo "== 1-2. tokenizer + language-model pretraining ($PRETRAIN_MIN min)"
train_stage lm --task lm --data "$SHARED" --data-splits train,val --val "$DEV" \
    --preset medium --vocab-size "$VOCAB" --batch-size 16 --objective "$OBJECTIVE" \
    --max-minutes "$PRETRAIN_MIN" --eval-interval 1000000
tail -2 "$OUT/lm.log"

START_FROM="$OUT/lm/best.pt"
if [ "$EMOJI_MIN" != 0 ]; then
    echo "== 3. emoji-prediction fine-tuning ($EMOJI_MIN min)"
    train_stage emoji --task sentiment --init-from "$OUT/lm/best.pt" \
        --data "$SHARED/tweeteval/emoji" --val "$SHARED/tweeteval/emoji" \
        --batch-size 64 --lr 1e-3 --warmup-steps 50 --dropout 0.1 \
        --max-minutes "$EMOJI_MIN" --eval-interval 200
    tail -2 "$OUT/emoji.log"
    START_FROM="$OUT/emoji/best.pt"
fi

echo "== 4. sentiment fine-tuning ($FINETUNE_MIN min)"
train_stage sentiment --task sentiment --data "$SHARED/semeval2017-4a" --val "$DEV" \
    --classifier-attention "$CLASSIFIER_ATTENTION" --class-weights --batch-size 64 --lr 5e-4 --warmup-steps 100 --dropout 0.1 \
    --eval-interval 150 --init-from "$START_FROM" --max-minutes "$FINETUNE_MIN"
cp "$OUT/sentiment/best.pt" "$OUT/sentiment.pt"

echo "== 5. the selected model on $DEV"
"$PY" sample.py --ckpt "$OUT/sentiment.pt" --evaluate "$DEV" --plot "$OUT/dev_confusion.png" \
    | tee "$OUT/dev_report.txt"
echo "wall time: $(( $(date +%s) - start )) s"
"$PY" - "$OUT/dev_report.txt" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
print("dev_macro_recall=" + re.search(r"macro-recall\s+([0-9.]+)", text).group(1))
PY
