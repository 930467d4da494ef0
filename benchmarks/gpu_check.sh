#!/usr/bin/env bash
# The vLLM engine on a GPU, in a few minutes: a prepared check for a machine that has one.
#
#   SELFDISTILL_GPU=1 bash scripts/install.sh     # CUDA torch + CUDA vLLM (needs PyPI)
#   bash benchmarks/gpu_check.sh [OUT_DIR]
#
# 1. the vLLM test module (SamplingParams for every on/off combination, per-request seeds,
#    row shape, rank statistics of top-k on/off) on the GPU;
# 2. `selfdistill sample` and `eval` through --backend vllm on the embedded default
#    (Qwen2.5-Coder-0.5B, materialised from its GGUF), 64 problems, bf16 chosen by dtype auto;
# 3. the sampling throughput benchmark, vLLM against plain transformers generate;
# 4. `selfdistill train` (full fine-tuning, bf16 weights, 4 steps on step 2's samples) launched
#    through each shipped accelerate config (DDP, FSDP2, DeepSpeed ZeRO-3) on every GPU here,
#    each writing a loadable model and its loss curve;
# 5. `selfdistill analyze` on the GPU (--device cuda, 8 responses per forward pass) of step
#    2's samples, base against the DDP-trained model.
# Everything it writes lands in OUT_DIR (default runs/gpu-check) with the GPU's name.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${1:-runs/gpu-check}
mkdir -p "$OUT"
"$PY" -c "import torch, vllm; assert torch.cuda.is_available(), 'no GPU'; print(torch.cuda.get_device_name(0), 'vllm', vllm.__version__)" | tee "$OUT/gpu.txt"
"$PY" -m pytest -q -m vllm tests/test_vllm_backend.py 2>&1 | tee "$OUT/pytest.log"
SD=("$PY" -m selfdistill.cli)
DEC=(--temperature 1.6 --top-k 20 --top-p 0.8 --min-p 0 --max-tokens 512 --n 1 --seed 0)
"${SD[@]}" sample --backend vllm --model qwen2.5-coder-0.5b --problems leetcode:train --limit 64 \
  "${DEC[@]}" --batch-size 64 --out "$OUT/sample" --no-progress | tee "$OUT/sample.txt"
"${SD[@]}" eval --backend vllm --model qwen2.5-coder-0.5b --problems leetcode:eval --limit 64 \
  --temperature 0 --top-k 0 --top-p 1 --min-p 0 --max-tokens 768 --n 1 --seed 0 --batch-size 64 \
  --out "$OUT/eval" --no-progress | tee "$OUT/eval.txt"
cp docs/benchmarks.md "$OUT/benchmarks.md"
"$PY" benchmarks/sampling_throughput.py --engines plain-generate,vllm --prompts 64 --max-tokens 256 \
  --out "$OUT/benchmarks.md" | tee "$OUT/throughput.txt"
NGPU=$("$PY" -c "import torch; print(torch.cuda.device_count())")
for launch in ddp fsdp zero3; do
  "$PY" -m accelerate.commands.launch --config_file "configs/accelerate/$launch.yaml" --num_processes "$NGPU" \
    -m selfdistill.cli train --model qwen2.5-coder-0.5b --data "$OUT/sample/samples.jsonl" \
    --out "$OUT/train-$launch" --method full --load-dtype bfloat16 --bf16 true --max-steps 4 \
    --global-batch-size 8 --per-device-batch-size 1 --learning-rate 5e-6 --min-learning-rate 1e-6 \
    --max-seq-length 2048 --save-steps 100 --no-progress 2>&1 | tail -3 | tee "$OUT/train-$launch.txt"
done
"${SD[@]}" analyze --samples "$OUT/sample/samples.jsonl" --base qwen2.5-coder-0.5b --ssd "$OUT/train-ddp/model" \
  --out "$OUT/analyze" --top-k 20 --top-p 0.8 --min-p 0 --max-response-tokens 512 --dtype bfloat16 \
  --device cuda --batch-size 8 --no-progress 2>&1 | tail -5 | tee "$OUT/analyze.txt"
