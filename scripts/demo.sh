#!/usr/bin/env bash
# Sets up everything (scripts/setup.sh), then runs the Fashion-MNIST demo.
# Extra arguments go to `fiftyone-dcd demo` (see --help).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${DCD_VENV:-$ROOT/.venv}
bash "$ROOT/scripts/setup.sh"
export FIFTYONE_DO_NOT_TRACK=true
exec "$VENV/bin/fiftyone-dcd" demo "$@"
