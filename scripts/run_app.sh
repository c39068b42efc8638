#!/usr/bin/env bash
# Sets up .venv (first run) and starts the Gradio app on http://127.0.0.1:7860.
# Usage: bash scripts/run_app.sh   (MPG_SAM2_MODEL=/path/to/checkpoint picks a local model)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
exec "$VENV_PY" app.py
