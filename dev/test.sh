#!/usr/bin/env bash
# The project's test command (the README and .ci/run call it): install everything, then lint,
# type-check and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
./dev/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff" >&2
ruff check kitbridge tests benchmarks
ruff format --check kitbridge tests benchmarks
echo "== mypy" >&2
mypy
echo "== pytest" >&2
pytest -q "$@"
