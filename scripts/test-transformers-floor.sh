#!/usr/bin/env bash
# The decoding tests at the lowest transformers that pyproject.toml allows (the transformers
# engine reads the processors `generate` builds through its private
# _prepare_generation_config / _get_logits_processor, so both ends of the range are tested:
# scripts/test.sh runs the whole suite at the installed, newest end, and this script runs
# the engine's tests at the floor). The floor and its tokenizers / hub go into a separate
# folder put first on PYTHONPATH; .venv is left as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
floor=$(sed -n 's/.*"transformers>=\([0-9.]*\),.*/\1/p' pyproject.toml)
[ -n "$floor" ] || { echo "error: no transformers floor found in pyproject.toml" >&2; exit 2; }
dir=${TMPDIR:-/tmp}/selfdistill-transformers-$floor
[ -f "$dir/transformers/__init__.py" ] || .venv/bin/python -m pip install --quiet --disable-pip-version-check \
  --no-deps --target "$dir" "transformers==$floor" 'tokenizers>=0.22,<0.23' 'huggingface-hub>=0.34,<1.0'
got=$(PYTHONPATH="$dir" .venv/bin/python -c 'import transformers; print(transformers.__version__)')
[ "$got" = "$floor" ] || { echo "error: imported transformers $got, not the floor $floor" >&2; exit 2; }
echo "transformers $floor (the floor): the decoding and code-extraction tests"
PYTHONPATH="$dir" .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_decoding.py tests/test_thinking.py "$@"
