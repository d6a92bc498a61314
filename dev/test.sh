#!/usr/bin/env bash
# The project's test command (the README and .ci/run call it): install everything, then run the
# whole test suite (which includes ruff and mypy: tests/unit/test_code_quality.py). Extra arguments
# go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
./dev/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
pytest -q "$@"
