#!/usr/bin/env bash
# Sets up a virtual environment in .venv (first run only) and runs the test suite.
# Usage: bash tests/run.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${MPG_SAM2_VENV:-.venv}
PY=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip"
stamp="$VENV/.mpg_sam2_requirements"
wanted="$(cat requirements.txt tests/requirements.txt | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  # torch first: sam2's source build imports it. On Python 3.11 / x86-64 these two wheels are
  # the pair the reference fixtures were produced with; elsewhere requirements.txt decides.
  if [ "$("$VENV/bin/python" -c 'import sys; print(sys.version_info[:2] == (3, 11))')" = True ]; then
    $PIP install -q "torch==2.14.1" "torchvision==0.29.1"
  else
    $PIP install -q "torch>=2.8,<2.12" torchvision
  fi
  $PIP install -q setuptools wheel
  SAM2_BUILD_CUDA=0 $PIP install -q --no-build-isolation "sam2==1.1.0"
  $PIP install -q -r requirements.txt -r tests/requirements.txt
  echo "$wanted" > "$stamp"
fi
exec "$VENV/bin/python" -m pytest "$@"
