#!/usr/bin/env bash
# Language-model quality at a fixed budget: bits per byte after 10 minutes of training.
#
#   bash bench/lm_quality.sh OUT_DIR [MINUTES]
#
# Trains two models from nothing on all of ../shared/data except
# twitter-2016devtest-A.tsv, each with the same wall-clock budget (default 10 minutes of
# training; reading the data and training the tokenizer are excluded, about 15 s):
#   * minillm   --preset medium: rotary positions, RMSNorm, ReLU² MLP, bf16 autocast
#               (with its bf16 loss and explicit attention), batch 16, BPE vocabulary 4,096
#   * baseline  --preset gpt2-baseline: learned positions, LayerNorm, GELU MLP, float32,
#               batch 32, BPE vocabulary 8,192 -- the issue's reference config
# Both are 4 layers x 4 heads x 256 wide, block 128. Bits per byte do not depend on the
# tokenizer, so the two vocabularies are compared fairly.
# They run side by side, one CPU core each, so machine noise hits both alike. Validation
# is twitter-2016devtest-A.tsv, normalised, each post followed by one end-of-post byte.
# The last line printed is `val_bpb=<minillm's bits per byte>`.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: bash bench/lm_quality.sh OUT_DIR [MINUTES]}
MINUTES=${2:-10}
SHARED=${SHARED:-../shared/data}
[ -d "$SHARED" ] || { echo "error: $SHARED not found (set SHARED=path/to/shared/data)" >&2; exit 2; }
PY=${PYTHON:-python}
mkdir -p "$OUT"
common=(--task lm --data "$SHARED" --data-splits train,val
        --val "$SHARED/semeval2017-4a/twitter-2016devtest-A.tsv"
        --max-minutes "$MINUTES" --max-steps 1000000 --eval-interval 1000000
        --log-interval 20 --num-threads 1 --seed 1337 --overwrite)  # --overwrite: a rerun replaces the previous one

"$PY" train.py "${common[@]}" --preset medium --dtype bfloat16 --batch-size 16 \
    --vocab-size 4096 --out "$OUT/minillm" \
    > "$OUT/minillm.log" 2>&1 &
mini=$!
"$PY" train.py "${common[@]}" --preset gpt2-baseline --dtype float32 --out "$OUT/baseline" \
    > "$OUT/baseline.log" 2>&1 &
base=$!
wait $mini || { tail -20 "$OUT/minillm.log" >&2; exit 1; }
wait $base || { tail -20 "$OUT/baseline.log" >&2; exit 1; }

"$PY" - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
def last_val(run):
    rows = [json.loads(l) for l in (out / run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["kind"] == "train"]
    val = [r for r in rows if r["kind"] == "val"][-1]
    speeds = [r["tokens_per_s"] for r in train[1:]]  # the first interval includes start-up
    return val, val["step"], sum(speeds) / len(speeds) if speeds else float("nan")
m, ms, mt = last_val("minillm")
b, bs, bt = last_val("baseline")
print(f"| run | steps | train tok/s | val loss | val bpb |")
print(f"|---|---|---|---|---|")
print(f"| minillm (medium, bf16, batch 16, vocab 4,096) | {ms} | {mt:,.0f} | {m['loss']:.4f} | {m['bpb']:.4f} |")
print(f"| baseline (gpt2-baseline, fp32) | {bs} | {bt:,.0f} | {b['loss']:.4f} | {b['bpb']:.4f} |")
print(f"bpb ratio minillm / baseline = {m['bpb'] / b['bpb']:.3f} (target <= 0.90)")
print(f"val_bpb={m['bpb']:.4f}")
PY
