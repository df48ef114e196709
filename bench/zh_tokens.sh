#!/usr/bin/env bash
# Tokens for Chinese: bytes per token and the language model's bits per byte on dev.csv,
# for byte-level BPE at five vocabulary sizes against the character tokenizer.
#
#   bash bench/zh_tokens.sh OUT_DIR [MINUTES]
#
# Six language models trained from nothing on the texts of
# ../shared/zh/online_shopping_10_cats/train.csv (normalised, labels ignored), each with
# its tokenizer trained on those texts: --tokenizer char, and BPE with --vocab-size 1,024,
# 2,048, 4,096, 8,192 and 16,384. Same model otherwise (--preset medium: 4 layers x 4 heads
# x 256, block 128, bf16, batch 16) and the same wall-clock budget (default 5 minutes of
# training each). They run two at a time, one CPU core each, so machine noise hits a pair
# alike. Bits per byte are measured on dev.csv (normalised, each post followed by one
# end-of-post byte) and do not depend on the tokenizer, so every row is compared fairly;
# bytes per token are the UTF-8 bytes of dev.csv's normalised texts over their tokens.
# Prints a markdown table; the last line is `best=<tokenizer with the lowest val bpb>`.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: bash bench/zh_tokens.sh OUT_DIR [MINUTES]}
MINUTES=${2:-5}
ZH=${ZH:-../shared/zh/online_shopping_10_cats}
[ -d "$ZH" ] || { echo "error: $ZH not found (set ZH=path/to/online_shopping_10_cats)" >&2; exit 2; }
PY=${PYTHON:-python}
mkdir -p "$OUT"
common=(--task lm --data "$ZH/train.csv" --val "$ZH/dev.csv" --preset medium
        --dtype bfloat16 --batch-size 16 --max-minutes "$MINUTES" --max-steps 1000000
        --eval-interval 1000000 --log-interval 50 --num-threads 1 --seed 1337 --overwrite)

run() {  # NAME TOKENIZER-FLAGS...: one model into $OUT/NAME, in the background
    local name=$1
    shift
    "$PY" train.py "${common[@]}" "$@" --out "$OUT/$name" > "$OUT/$name.log" 2>&1 &
}
pair() {  # two runs side by side; stop on the first failure
    run "$1" $2
    local a=$!
    run "$3" $4
    local b=$!
    wait $a || { tail -20 "$OUT/$1.log" >&2; exit 1; }
    wait $b || { tail -20 "$OUT/$3.log" >&2; exit 1; }
}
pair char "--tokenizer char" bpe-1024 "--vocab-size 1024"
pair bpe-2048 "--vocab-size 2048" bpe-4096 "--vocab-size 4096"
pair bpe-8192 "--vocab-size 8192" bpe-16384 "--vocab-size 16384"

"$PY" - "$OUT" "$ZH/dev.csv" <<'PY'
import json, sys
from pathlib import Path
from minillm.checkpoint import load_for_inference
from minillm.formats import read_posts

out, dev = Path(sys.argv[1]), sys.argv[2]
texts = [p.text for p in read_posts(dev, labels=False).posts]
n_bytes = sum(len(t.encode()) for t in texts)
print(f"dev.csv: {len(texts):,} posts, {n_bytes:,} bytes ({n_bytes / sum(map(len, texts)):.2f} per character)")
print("| tokenizer | vocabulary | bytes / token | steps | train tok/s | val bpb |")
print("|---|--:|--:|--:|--:|--:|")
best = None
for name in ["char", "bpe-1024", "bpe-2048", "bpe-4096", "bpe-8192", "bpe-16384"]:
    _, tok, _ = load_for_inference(out / name / "best.pt")
    n_tokens = sum(len(ids) for ids in tok.encode_batch(texts))
    rows = [json.loads(line) for line in (out / name / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["kind"] == "train"][1:]  # the first interval includes start-up
    val = [r for r in rows if r["kind"] == "val"][-1]
    speed = f"{sum(r['tokens_per_s'] for r in train) / len(train):,.0f}" if train else "-"
    print(f"| {name} | {tok.vocab_size:,} | {n_bytes / n_tokens:.2f} | {val['step']:,} | {speed} | {val['bpb']:.4f} |")
    if best is None or val["bpb"] < best[1]:
        best = (name, val["bpb"])
print(f"best={best[0]}")
PY
