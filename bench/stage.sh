# Sourced by bench/sentiment.sh, bench/tweeteval.sh and bench/zh_sentiment.sh: one stage of
# a benchmark.
#
#   train_stage NAME FLAGS...   runs train.py into $OUT/NAME with the settings every stage
#                               shares, its output in $OUT/NAME.log (whose tail is shown if
#                               it fails); needs $OUT and $PY.
train_stage() {
    local name=$1
    shift
    "$PY" train.py "$@" --dtype bfloat16 --max-steps 1000000 --log-interval 50 --seed "${SEED:-1337}" \
        --overwrite --out "$OUT/$name" > "$OUT/$name.log" 2>&1 \
        || { tail -20 "$OUT/$name.log" >&2; exit 1; }
}
