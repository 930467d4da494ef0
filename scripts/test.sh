#!/usr/bin/env bash
# The project's test command (CI runs exactly this): install into .venv, lint, run all tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
bash scripts/install-browser.sh  # chromium for the HTML report's browser test
.venv/bin/ruff check src tests benchmarks
bash scripts/test-transformers-floor.sh  # the engine's tests at the lowest transformers allowed
.venv/bin/python -m pytest -q "$@"
