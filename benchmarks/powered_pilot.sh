#!/usr/bin/env bash
# The learning-rate pilot of the powered experiment (docs/experiments.md, run 5).
# Needs the run's SSD data (`selfdistill run configs/powered-0.5b.yaml --stop-after sample`).
# For each candidate peak rate: full fine-tuning on the first 128 SSD samples (8 steps of
# 16, 1 warm-up step, cosine to a tenth, the run's optimiser), then `analyze` of 32 SSD
# samples the pilot never trained on (the last 32), teacher-forced through the base model
# and the pilot model. Every step is a resumable stage: rerun the script until it says done.
# Ends with the rule applied (benchmarks/powered_pilot_rule.py, PILOT_DIR/decision.json).
# Usage: bash benchmarks/powered_pilot.sh [RUN_DIR] [PILOT_DIR]
set -euo pipefail
run=${1:-runs/powered-0.5b}
pilot=${2:-runs/powered-0.5b-pilot}
sd=${SELFDISTILL:-.venv/bin/selfdistill}
samples="$run/sample/samples.jsonl"
[ -f "$run/sample/stage.json" ] || { echo "error: $run/sample has not finished; run the sample stage first" >&2; exit 2; }
mkdir -p "$pilot"
rows=$(wc -l < "$samples")
head -n 128 "$samples" > "$pilot/train.jsonl.tmp" && mv "$pilot/train.jsonl.tmp" "$pilot/train.jsonl"
tail -n 32 "$samples" > "$pilot/heldout.jsonl.tmp" && mv "$pilot/heldout.jsonl.tmp" "$pilot/heldout.jsonl"
echo "pilot: 128 training rows and 32 held-out rows of $rows ($(lscpu | sed -n 's/^Model name: *//p'))"
for lr in 1e-5 5e-5; do
  min=$(python3 -c "print($lr / 10)")
  start=$(date +%s)
  "$sd" train --model qwen2.5-coder-0.5b --data "$pilot/train.jsonl" --out "$pilot/lr$lr" \
    --method full --learning-rate "$lr" --min-learning-rate "$min" --warmup-steps 1 --max-steps 8 \
    --global-batch-size 16 --per-device-batch-size 1 --max-seq-length 3072 --weight-decay 0.1 \
    --adam-beta1 0.9 --adam-beta2 0.95 --bf16 true --gradient-checkpointing false --save-steps 4 --seed 0
  echo "lr $lr: train $(( $(date +%s) - start )) s"
  start=$(date +%s)
  "$sd" analyze --samples "$pilot/heldout.jsonl" --base qwen2.5-coder-0.5b --ssd "$pilot/lr$lr/model" \
    --out "$pilot/analyze-lr$lr" --top-k 20 --top-p 0.8 --min-p 0 --max-response-tokens 512 \
    --dtype bfloat16 --bootstrap-samples 2000 --bootstrap-seed 0
  echo "lr $lr: analyze $(( $(date +%s) - start )) s"
done
echo "pilot done: $pilot"
"${PYTHON:-.venv/bin/python}" benchmarks/powered_pilot_rule.py "$pilot"
