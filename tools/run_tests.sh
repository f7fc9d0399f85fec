#!/usr/bin/env bash
# README command (b): install if needed, then run the test suite (CPU only, offline).
#   bash tools/run_tests.sh [pytest args...]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
bash "$ROOT/tools/setup_env.sh"
cd "$ROOT"
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 exec "$ROOT/.venv/bin/python" -m pytest tests "$@"
