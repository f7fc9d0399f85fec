#!/usr/bin/env bash
# The GPU check in one device call: install the carried wheels (`.whl/`, made here by
# `bash tools/misc/device_bundle.sh`), check the stack imports, then run benchmarks/gpu_check.py.
#
# On the lent GPU machine (no network; its python3 has torch 2.11.0+cu130, no OpenMMLab stack):
#   run(command='bash benchmarks/gpu_check_device.sh', carry=['.whl'], timeout_s=360)
# Back in $OUT: gpu_check.json (the numbers), gpu_check.log (the whole output), versions.txt.
# CPU rehearsal (a Python 3.12 venv like the device's; see docs/dependencies.md):
#   PY=/work/venv-devemu312/bin/python OUT=/tmp/gpu_check_out bash benchmarks/gpu_check_device.sh --tiny
# Arguments are passed on to gpu_check.py. Env: PY (python3), SITE (/tmp/site), OUT (work_dirs/gpu_check).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PY:-python3}"
SITE="${SITE:-/tmp/site}"
OUT="${OUT:-$ROOT/work_dirs/gpu_check}"
mkdir -p "$OUT"
say() { printf '[gpu_check_device] %s\n' "$*" >&2; }
ls "$ROOT"/.whl/*.whl >/dev/null 2>&1 \
  || { say "no $ROOT/.whl/*.whl: run 'bash tools/misc/device_bundle.sh' here and carry ['.whl']"; exit 2; }

t0=$(date +%s)
# --no-deps: the set is checked whole where it was made (tools/misc/check_wheel_bundle.py)
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
  "$ROOT"/.whl/*.whl
say "installed $(ls "$ROOT"/.whl/*.whl | wc -l) wheels into $SITE in $(( $(date +%s) - t0 )) s"
export PYTHONPATH="$ROOT:$SITE${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

# Fail fast, before any model is built: the compiled mmcv must load into this torch (it was built
# on CPU against the same torch version), and the device's torch/numpy must not be shadowed.
"$PY" - "$SITE" <<'EOF' 2>&1 | tee "$OUT/versions.txt"
import os.path as osp, sys
site = osp.realpath(sys.argv[1])
import numpy, torch
for mod in (torch, numpy):
    if osp.realpath(mod.__file__).startswith(site):
        sys.exit(f'{mod.__name__} is imported from {site}: the bundle must not carry it')
import mmcv, mmcv.ops, mmdet, mmengine, mmseg, peft, transformers, trl
from mmcv.ops import nms  # the compiled _ext (the check calls no op; mmdet.models imports them)
keep = nms(torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]]), torch.tensor([.9, .8]), .5)[1]
assert keep.tolist() == [0], keep  # the op runs (CPU), not only loads
import finers_mm.models  # noqa: F401  (registers the detectors, through mmdet.models)
print('python', sys.version.split()[0])
for mod in (torch, numpy, transformers, mmcv, mmdet, mmengine, mmseg, peft, trl):
    print(f'{mod.__name__:13s}{mod.__version__:16s}{osp.dirname(mod.__file__)}')
print('cuda', torch.version.cuda, 'available', torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')
EOF

"$PY" "$ROOT/benchmarks/gpu_check.py" --out "$OUT/gpu_check.json" "$@" 2>&1 | tee "$OUT/gpu_check.log"
say "done in $(( $(date +%s) - t0 )) s: $OUT/gpu_check.json"
