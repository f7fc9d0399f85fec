#!/usr/bin/env bash
# Prepare `.whl/`: the wheels the lent GPU machine lacks, so `benchmarks/gpu_check_device.sh` runs there
# in one call with no network (see benchmarks/gpu_check.py, "On the lent GPU machine").
#
# The device (docs/dependencies.md, "The GPU machine's bundle") has Python 3.12.3 with
# torch 2.11.0+cu130, torchvision, numpy, transformers 5.17.0 ... but none of the OpenMMLab stack. So:
#   1. a build venv OUTSIDE the repo (VENV, default /work/venv-device312): Python 3.12 + torch 2.11.0
#      from PyPI (the cu130 build, the device's own; it imports and compiles fine without a GPU);
#   2. mmcv 2.1.0 compiled WITH its ops (CPU ops: mmdet.models imports mmcv.ops, the check calls none)
#      into a wheel, with the recipe of tools/setup_env.sh step 2 (tools/misc/mmcv_build.sh holds
#      it), its _ext stripped of debug symbols (wheel 31 MiB -> 1.2 MiB); kept in the build venv, so
#      it is compiled once per torch version (31 min at MAX_JOBS=1 on the shared 2-core machine);
#   3. the other wheels the device lacks or has at another version (WHEELS below), downloaded for
#      cp312 manylinux into a cache in the build venv;
#   4. tools/misc/check_wheel_bundle.py checks the set: no torch/numpy/... (they would shadow the
#      device's CUDA build), one version per name, every Requires-Dist met by the bundle or by the
#      device's packages, total under MAX_MIB (60; a call carries 64 MiB with the tree).
# The set is built in a temp folder and renamed to `.whl/` only when whole; a stamp keyed on this
# file, mmcv_build.sh and the checker makes a second run return at once.
#
# Usage: bash tools/misc/device_bundle.sh   (VENV=path for another build venv; PYTHON=python3.12
#        interpreter to create it with; MAX_JOBS=1 compile jobs; MAX_MIB=60)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${VENV:-/work/venv-device312}"
OUT_DIR="$ROOT/.whl"
MAX_MIB="${MAX_MIB:-60}"
DEVICE_TORCH="torch==2.11.0"  # the device's torch (2.11.0+cu130; PyPI's 2.11.0 is that build)
MMCV_SPEC="mmcv==2.1.0"
# What the device lacks, or has at a version other than the tested one (transformers, peft), with the
# runtime needs of these that it lacks too (check_wheel_bundle.py fails if one is missing).
WHEELS=(
  mmengine==0.10.7 addict==2.4.0 yapf==0.43.0 platformdirs==4.14.9 termcolor==3.3.0
  mmdet==3.3.0 terminaltables==3.1.10 shapely==2.2.0 pycocotools==2.0.11
  mmsegmentation==1.2.2 prettytable==3.19.0 wcwidth==0.9.5 ftfy==6.3.1
  transformers==5.20.2 peft==0.21.2 trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
  segment-anything==1.0
)
PLATFORMS=(manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64
           manylinux2014_x86_64 manylinux1_x86_64)

log() { printf '[device_bundle] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
start=$(date +%s)

stamp_key() {
  { cat "$ROOT/tools/misc/device_bundle.sh" "$ROOT/tools/misc/mmcv_build.sh" \
        "$ROOT/tools/misc/check_wheel_bundle.py"; echo "$MAX_MIB"; } | sha256sum | cut -d' ' -f1
}
STAMP="$OUT_DIR/.bundle_stamp"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(stamp_key)" ]]; then
  log "$OUT_DIR is up to date ($(du -sm "$OUT_DIR" | cut -f1) MiB); delete its .bundle_stamp to rebuild"
  exit 0
fi

find_python312() {
  if [[ -n "${PYTHON:-}" ]]; then echo "$PYTHON"; return; fi
  if python3.12 -c '' 2>/dev/null; then command -v python3.12; return; fi
  local root; root="$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"
  local cand; for cand in "$root"/versions/3.12*/bin/python3.12; do
    [[ -x "$cand" ]] && { echo "$cand"; return; }
  done
  die "no Python 3.12 found (the device runs 3.12): set PYTHON=/path/to/python3.12"
}

log "step 1/4: build venv $VENV (Python 3.12, $DEVICE_TORCH, setuptools<82, wheel, ninja)"
if [[ ! -x "$VENV/bin/python" ]]; then
  "$(find_python312)" -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 12), sys.version' \
  || die "$VENV is not a Python 3.12 venv: remove it or set VENV= to another path"
PIP=("$PY" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q "$DEVICE_TORCH" "setuptools<82" wheel ninja packaging
torch_version="$("$PY" -c 'import torch; print(torch.__version__)')"
log "  torch $torch_version"

# shellcheck source=tools/misc/mmcv_build.sh
source "$ROOT/tools/misc/mmcv_build.sh"
MMCV_DIR="$VENV/bundle/mmcv-torch$torch_version"
mmcv_whl="$(ls "$MMCV_DIR"/mmcv-*.whl 2>/dev/null | head -1 || true)"
if [[ -z "$mmcv_whl" ]]; then
  log "step 2/4: compiling $MMCV_SPEC with its ops against torch $torch_version (MAX_JOBS=${MAX_JOBS:-1}; about 30 min on one core)"
  t0=$(date +%s)
  tmp_mmcv="$(mktemp -d "$VENV/bundle.tmp.XXXX")"
  trap 'rm -rf "$tmp_mmcv"' EXIT
  MAX_JOBS="${MAX_JOBS:-1}" mmcv_build_wheel "$PY" "$MMCV_SPEC" "$tmp_mmcv/raw"
  mmcv_strip_wheel "$PY" "$tmp_mmcv/raw"/mmcv-*.whl "$tmp_mmcv/stripped"
  mkdir -p "$(dirname "$MMCV_DIR")"
  rm -rf "$MMCV_DIR"; mv "$tmp_mmcv/stripped" "$MMCV_DIR"
  log "  raw $(du -m "$tmp_mmcv"/raw/mmcv-*.whl | cut -f1) MiB -> stripped $(du -m "$MMCV_DIR"/mmcv-*.whl | cut -f1) MiB in $(( $(date +%s) - t0 )) s"
  rm -rf "$tmp_mmcv"; trap - EXIT
  mmcv_whl="$(ls "$MMCV_DIR"/mmcv-*.whl | head -1)"
else
  log "step 2/4: reusing $mmcv_whl"
fi

# The device needs a glibc / libstdc++ at least this new (its Python 3.12.3 is Ubuntu 24.04's, which
# has glibc 2.39 / GLIBCXX_3.4.33; this machine's gcc 12 and glibc 2.36 give older symbols).
"$PY" -m zipfile -e "$mmcv_whl" "$VENV/bundle/mmcv-unpacked" \
  && log "  $(basename "$mmcv_whl") needs $(objdump -T "$VENV"/bundle/mmcv-unpacked/mmcv/_ext*.so \
     | grep -o 'GLIBC\(XX\)\?_[0-9.]*' | sort -Vu | awk -F_ '{v[$1]=$0} END {print v["GLIBC"], v["GLIBCXX"]}')"
rm -rf "$VENV/bundle/mmcv-unpacked"

log "step 3/4: downloading ${#WHEELS[@]} wheels for cp312 (cached in $VENV/bundle/downloads)"
DL="$VENV/bundle/downloads"
mkdir -p "$DL"
plat_args=(); for p in "${PLATFORMS[@]}"; do plat_args+=(--platform "$p"); done
# --no-deps: each need is named in WHEELS and checked in step 4; binary only, for the device's Python
"${PIP[@]}" download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --abi cp312 --abi abi3 --abi none "${plat_args[@]}" -d "$DL" "${WHEELS[@]}"

log "step 4/4: assembling and checking the set"
tmp_out="$(mktemp -d "$ROOT/.whl.tmp.XXXX")"
trap 'rm -rf "$tmp_out"' EXIT
cp "$mmcv_whl" "$tmp_out/"
"$PY" "$ROOT/tools/misc/check_wheel_bundle.py" --select "$DL" --copy-to "$tmp_out" -- "${WHEELS[@]}"
"$PY" "$ROOT/tools/misc/check_wheel_bundle.py" --check "$tmp_out" --max-mib "$MAX_MIB"
stamp_key > "$tmp_out/.bundle_stamp"
rm -rf "$OUT_DIR.old"
if [[ -d "$OUT_DIR" ]]; then mv "$OUT_DIR" "$OUT_DIR.old"; fi
chmod 755 "$tmp_out"; mv "$tmp_out" "$OUT_DIR"
trap - EXIT
rm -rf "$OUT_DIR.old"
log "$OUT_DIR ready: $(ls "$OUT_DIR"/*.whl | wc -l) wheels, $(du -sm "$OUT_DIR" | cut -f1) MiB ($(( $(date +%s) - start )) s)"
