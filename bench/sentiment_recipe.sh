# The sentiment recipe's stage flags for train.py, in one place: bench/sentiment.sh runs
# the stages by wall-clock minutes, bench/sentiment_sweep.sh by step count. Sourced by
# both after they set SHARED, DEV and VOCAB.

# language-model pretraining on every post but the dev file, labels ignored
LM_FLAGS=(--task lm --data "$SHARED" --data-splits train,val --val "$DEV"
          --preset medium --vocab-size "$VOCAB" --batch-size 16)
# sentiment fine-tuning on the SemEval files but the dev file, selected on the dev file
FT_FLAGS=(--task sentiment --data "$SHARED/semeval2017-4a" --val "$DEV" --class-weights
          --batch-size 64 --lr 5e-4 --warmup-steps 100 --dropout 0.1 --eval-interval 150)
