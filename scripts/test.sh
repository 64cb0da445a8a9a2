#!/usr/bin/env bash
# Sets up everything (scripts/setup.sh), then runs the test suite.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${DCD_VENV:-$ROOT/.venv}
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
export FIFTYONE_DO_NOT_TRACK=true
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
