#!/usr/bin/env bash
# Installs fiftyone-dcd and everything it needs into a virtual environment
# (./.venv, or $DCD_VENV), and Chromium for the browser tests, then checks
# that FiftyOne's database starts.
# Safe to rerun: finished steps are skipped by pip.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${DCD_VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip wheel
fi
PIP=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)

# torch before anything that depends on it, so that the release pinned here
# (on this machine's disk for Python 3.11) is the one every package sees.
if ! "$VENV/bin/python" -c "import torch, torchvision" 2>/dev/null; then
    "${PIP[@]}" "torch==${DCD_TORCH:-2.14.1}" \
        "torchvision==${DCD_TORCHVISION:-0.29.1}"
fi

"${PIP[@]}" -e "$ROOT[test]"

# Debian's Chromium for the browser tests, which playwright (a test extra)
# drives; never fails setup, says why when it is missing.
bash "$ROOT/scripts/chromium.sh" ||
    echo "scripts/chromium.sh failed: the browser tests are skipped" >&2

# Ends with a mongod that starts, or a message that says what to do.
"$VENV/bin/fiftyone-dcd" doctor --fix
