#!/usr/bin/env bash
# Formats (black, 79 columns) and lints (ruff) the code in one command.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${DCD_VENV:-$ROOT/.venv}
cd "$ROOT"
"$VENV/bin/python" -m pip install -q black ruff
"$VENV/bin/black" -q fiftyone_dcd operators tests bench 2>/dev/null || \
    "$VENV/bin/black" -q fiftyone_dcd operators tests
"$VENV/bin/ruff" check fiftyone_dcd operators tests
