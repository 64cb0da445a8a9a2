#!/usr/bin/env bash
# Formats (black, 79 columns) and lints (ruff) the code in one command.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${DCD_VENV:-$ROOT/.venv}
cd "$ROOT"
"$VENV/bin/python" -m pip install -q black ruff
"$VENV/bin/black" -q -l 79 fiftyone_dcd operators tests bench
"$VENV/bin/ruff" check fiftyone_dcd operators tests bench
