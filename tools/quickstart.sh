#!/usr/bin/env bash
# README command (a): install if needed, then run the main job on the embedded default
# (tiny models built locally, bundled synthetic data, no downloads).
#   bash tools/quickstart.sh [--out-dir DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
bash "$ROOT/tools/setup_env.sh"
cd "$ROOT"
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 exec "$ROOT/.venv/bin/python" tools/misc/quickstart.py "$@"
