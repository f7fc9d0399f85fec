#!/usr/bin/env bash
# Create (if missing) and fill the project's virtual environment `.venv` with the tested stack.
#
# This is the ONE place that knows how to install finers_mm (see ../shared/DEPENDENCIES.md):
#   1. torch/torchvision first (mmcv's build reads the installed torch; without it mmcv silently builds
#      without its compiled ops);
#   2. mmcv 2.1.0 from source: setuptools<82 (its setup.py imports pkg_resources), no build isolation,
#      ninja, MAX_JOBS, and a compiler wrapper that appends -std=c++20 (torch 2.14 headers need C++20,
#      mmcv forces -std=c++17; gcc keeps the last -std);
#   3. sam2 1.1.0 (Meta's SAM 2, an sdist whose build imports torch): no build isolation, so it builds
#      against the installed torch instead of downloading another into an isolated build env, and
#      SAM2_BUILD_CUDA=0 (pure Python; only its optional hole-filling CUDA kernel is left out);
#   4. finers_mm itself, editable, with the extras in EXTRAS (default `dev`; `dev,vllm` adds vLLM 0.33.0
#      for colocated rollouts, whose exact torch/torchvision/transformers pins are the ones set here).
# Idempotent: a stamp keyed on the requirement files makes a second run return in well under a second.
#
# Usage: bash tools/setup_env.sh            (VENV=path to use another environment; MMCV_REBUILD=1 to
#        compile mmcv again instead of reusing pip's cached wheel, e.g. after the torch pin moved;
#        EXTRAS=dev,vllm to add the vllm extra)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PY_BOOT="${PYTHON:-python3}"
TORCH_SPEC="torch==2.14.0 torchvision==0.29.0"  # the pair vllm 0.33.0 pins (the `vllm` extra)
MMCV_SPEC="mmcv==2.1.0"
SAM2_SPEC="sam2==1.1.0"
EXTRAS="${EXTRAS:-dev}"

stamp_key() {
  { cat "$ROOT/setup.py" "$ROOT/tools/setup_env.sh"; echo "$EXTRAS"; } | sha256sum | cut -d' ' -f1
}
STAMP="$VENV/.finers_mm_installed"
if [[ "${MMCV_REBUILD:-0}" != 1 && -f "$STAMP" && "$(cat "$STAMP")" == "$(stamp_key)" ]]; then
  exit 0
fi

log() { printf '[setup_env] %s\n' "$*" >&2; }
start=$(date +%s)

if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating $VENV"
  "$PY_BOOT" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)

log "step 1/4: torch, torchvision and build tools"
"${PIP[@]}" install -q $TORCH_SPEC "setuptools<82" wheel ninja

if [[ "${MMCV_REBUILD:-0}" == 1 ]] || ! "$PY" -c "import mmcv, mmcv.ops; from mmcv.ops import nms" 2>/dev/null \
    || [[ "$("$PY" -c 'import mmcv; print(mmcv.__version__)' 2>/dev/null)" != "${MMCV_SPEC#mmcv==}" ]]; then
  log "step 2/4: $MMCV_SPEC with compiled ops (about 7 min on 2 cores the first time; pip caches the wheel)"
  # pip reuses a cached mmcv wheel whatever torch it was compiled against; MMCV_REBUILD=1 compiles it
  # afresh, over an installed one too (after a torch move: the import check below catches an ABI
  # break, not a silent mismatch).
  mmcv_rebuild_flags=""
  if [[ "${MMCV_REBUILD:-0}" == 1 ]]; then mmcv_rebuild_flags="--no-cache-dir --force-reinstall --no-deps"; fi
  wrapper_dir="$(mktemp -d)"
  trap 'rm -rf "$wrapper_dir"' EXIT
  source "$ROOT/tools/misc/mmcv_build.sh"  # the C++20 wrapper, shared with tools/misc/device_bundle.sh
  mmcv_cxx20_wrapper "$wrapper_dir"
  FINERS_REAL_CXX="${CXX:-g++}" CXX="$wrapper_dir/cxx20" MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
    PATH="$VENV/bin:$PATH" "${PIP[@]}" install -q --no-build-isolation $mmcv_rebuild_flags "$MMCV_SPEC"
  "$PY" -c "from mmcv.ops import nms" || { log "mmcv was built without its ops"; exit 1; }
else
  log "step 2/4: $MMCV_SPEC with ops already installed"
fi

log "step 3/4: $SAM2_SPEC (no build isolation, SAM2_BUILD_CUDA=0)"
SAM2_BUILD_CUDA=0 "${PIP[@]}" install -q --no-build-isolation "$SAM2_SPEC"

log "step 4/4: finers_mm (editable) with extras [$EXTRAS] and its dependencies"
"${PIP[@]}" install -q -e "$ROOT[$EXTRAS]"

stamp_key > "$STAMP"
log "environment ready in $VENV ($(( $(date +%s) - start )) s)"
