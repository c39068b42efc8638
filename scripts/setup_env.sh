#!/usr/bin/env bash
# Creates .venv (once) and installs requirements.txt plus any extra requirement files given.
# Usage: source scripts/setup_env.sh [extra-requirements.txt ...]   (sets $VENV_PY)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV=${MPG_SAM2_VENV:-$ROOT/.venv}
PY=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip"
stamp="$VENV/.mpg_sam2_requirements"
wanted="$(cat "$ROOT/requirements.txt" "$@" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  # torch first: sam2's source build imports it. On Python 3.11 these two wheels are the pair
  # the reference fixtures were produced with; elsewhere requirements.txt decides.
  if [ "$("$VENV/bin/python" -c 'import sys; print(sys.version_info[:2] == (3, 11))')" = True ]; then
    $PIP install -q "torch==2.14.1" "torchvision==0.29.1"
  else
    $PIP install -q "torch>=2.8,<2.12" torchvision
  fi
  $PIP install -q setuptools wheel
  SAM2_BUILD_CUDA=0 $PIP install -q --no-build-isolation "sam2==1.1.0"
  extra=()
  for f in "$@"; do extra+=(-r "$f"); done
  $PIP install -q -r "$ROOT/requirements.txt" "${extra[@]}"
  echo "$wanted" > "$stamp"
fi
VENV_PY="$VENV/bin/python"
