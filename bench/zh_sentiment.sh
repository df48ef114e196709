#!/usr/bin/env bash
# Chinese sentiment, end to end: a review classifier from nothing in 20 CPU minutes.
#
#   bash bench/zh_sentiment.sh OUT_DIR
#
# On ../shared/zh/online_shopping_10_cats (Chinese shopping reviews, positive/negative):
# 1. reads and normalises train.csv (Weibo-style @names, short links, full-width letters
#    and digits; see minillm/normalize.py) and trains a byte-level BPE tokenizer (VOCAB,
#    default 2,048: the best bits per byte on dev.csv in bench/zh_tokens.sh) on its texts;
# 2. pretrains a language model (4 layers x 4 heads x 256, bf16) on train.csv's texts,
#    labels ignored, validated on dev.csv's texts;
# 3. fine-tunes the trunk and a 2-class head on train.csv's labels, in batches of reviews
#    of similar length (--batch-by-length: most are short, a few run to hundreds of
#    characters, and random batches were mostly padding), selecting the checkpoint (and
#    the two-class threshold) with the best accuracy on dev.csv;
# 4. leaves the selected model at OUT_DIR/zh_sentiment.pt, prints its dev report, and ends
#    with the lines `dev_accuracy=<number>` and `dev_macro_f1=<number>`.
# The held-out test split and the unseen domain are scored from outside:
#   python sample.py --ckpt OUT_DIR/zh_sentiment.pt --classify-file texts.txt
# Wall-clock split: PRETRAIN_MIN (default 9) + FINETUNE_MIN (8) of training, plus about
# two minutes of reading, tokenizer training and evaluation. SEED (1337) seeds both stages.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: bash bench/zh_sentiment.sh OUT_DIR}
ZH=${ZH:-../shared/zh/online_shopping_10_cats}
PRETRAIN_MIN=${PRETRAIN_MIN:-9}
FINETUNE_MIN=${FINETUNE_MIN:-8}
VOCAB=${VOCAB:-2048}
PY=${PYTHON:-python}
[ -d "$ZH" ] || { echo "error: $ZH not found (set ZH=path/to/online_shopping_10_cats)" >&2; exit 2; }
mkdir -p "$OUT"
start=$(date +%s)

source bench/stage.sh  # train_stage NAME FLAGS...: train.py into $OUT/NAME

echo "== 1-2. tokenizer + language-model pretraining ($PRETRAIN_MIN min)"
train_stage lm --task lm --data "$ZH/train.csv" --val "$ZH/dev.csv" --preset medium \
    --vocab-size "$VOCAB" --batch-size 16 --max-minutes "$PRETRAIN_MIN" --eval-interval 1000000
tail -2 "$OUT/lm.log"

echo "== 3. sentiment fine-tuning ($FINETUNE_MIN min)"
train_stage sentiment --task classify --data "$ZH/train.csv" --val "$ZH/dev.csv" \
    --metric accuracy --batch-by-length --batch-size 64 --lr 5e-4 --warmup-steps 100 \
    --dropout 0.1 --eval-interval 250 --init-from "$OUT/lm/best.pt" --max-minutes "$FINETUNE_MIN"
tail -2 "$OUT/sentiment.log"
cp "$OUT/sentiment/best.pt" "$OUT/zh_sentiment.pt"

echo "== 4. the selected model on $ZH/dev.csv"
"$PY" sample.py --ckpt "$OUT/zh_sentiment.pt" --evaluate "$ZH/dev.csv" --plot "$OUT/dev_confusion.png" \
    | tee "$OUT/dev_report.txt"
"$PY" sample.py --ckpt "$OUT/zh_sentiment.pt" --evaluate "$ZH/dev.csv" --format json \
    > "$OUT/dev_report.json" 2> /dev/null
echo "wall time: $(( $(date +%s) - start )) s"
"$PY" - "$OUT/dev_report.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
print(f"dev_accuracy={report['accuracy']:.4f}")
print(f"dev_macro_f1={report['macro_f1']:.4f}")
PY
