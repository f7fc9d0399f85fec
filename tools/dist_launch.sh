#!/usr/bin/env bash
# The torchrun invocation shared by dist_train.sh and dist_test.sh.
#   bash tools/dist_launch.sh NPROC_PER_NODE TOOL_SCRIPT [args...]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR and PORT as with mmdet. PYTHON picks the interpreter
# (default: the repo's .venv if present, else python).
set -euo pipefail
NPROC=$1
SCRIPT=$2
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python; fi
fi
PYTHONPATH="$ROOT:${PYTHONPATH:-}" \
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --nproc_per_node="$NPROC" \
    --master_port="${PORT:-29500}" \
    "$SCRIPT" "${@:3}" --launcher pytorch
