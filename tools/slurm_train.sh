#!/usr/bin/env bash
# Training on Slurm:  bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py flags...]
# (GPUS, GPUS_PER_NODE, CPUS_PER_TASK, SRUN_ARGS, PYTHON: see tools/slurm_launch.sh)
set -euo pipefail
TOOLS="$(cd "$(dirname "$0")" && pwd)"
exec bash "$TOOLS/slurm_launch.sh" "$1" "$2" "$TOOLS/train.py" "$3" --work-dir="$4" "${@:5}"
