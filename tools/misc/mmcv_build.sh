# Sourced, not run: how to compile mmcv 2.x with its ops against the installed torch (the tricky
# parts of tools/setup_env.sh step 2, for tools/misc/device_bundle.sh).
#
# Why each part (see ../shared/DEPENDENCIES.md): torch must be installed first (mmcv's setup.py reads
# it; without it mmcv silently builds without ops), so no build isolation; setuptools<82 (its setup.py
# imports pkg_resources); ninja; MAX_JOBS; and a compiler wrapper appending -std=c++20, because
# torch >= 2.10's headers need C++20 while mmcv forces -std=c++17 (gcc keeps the last -std).

# mmcv_cxx20_wrapper DIR: write DIR/cxx20, a compiler that runs ${FINERS_REAL_CXX:-g++} ... -std=c++20.
mmcv_cxx20_wrapper() {
  cat > "$1/cxx20" <<'WRAP'
#!/usr/bin/env bash
exec "${FINERS_REAL_CXX:-g++}" "$@" -std=c++20
WRAP
  chmod +x "$1/cxx20"
}

# mmcv_build_wheel PY SPEC OUTDIR: compile SPEC (e.g. mmcv==2.1.0) with its ops into a wheel in OUTDIR,
# against the torch installed in PY's environment; fails if the wheel has no compiled _ext.
mmcv_build_wheel() {
  local py="$1" spec="$2" outdir="$3" wrap
  wrap="$(mktemp -d)"
  mmcv_cxx20_wrapper "$wrap"
  mkdir -p "$outdir"
  FINERS_REAL_CXX="${CXX:-g++}" CXX="$wrap/cxx20" MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
    PATH="$(dirname "$py"):$PATH" "$py" -m pip --disable-pip-version-check wheel -q --no-deps \
    --no-build-isolation --no-binary mmcv --no-cache-dir -w "$outdir" "$spec"
  rm -rf "$wrap"
  local whl; whl="$(ls "$outdir"/mmcv-*.whl)"
  "$py" -m zipfile -l "$whl" | grep -q 'mmcv/_ext' \
    || { echo "mmcv_build_wheel: $whl has no compiled mmcv/_ext (built without ops)" >&2; return 1; }
}

# mmcv_strip_wheel PY WHEEL OUTDIR: write WHEEL to OUTDIR with its shared objects stripped of debug
# and unneeded symbols (the _ext is ~82 MB unstripped); `wheel pack` rewrites RECORD's hashes.
mmcv_strip_wheel() {
  local py="$1" whl="$2" outdir="$3" work
  work="$(mktemp -d)"
  "$py" -m wheel unpack -d "$work" "$whl" >/dev/null \
    && find "$work" -name '*.so' -exec strip --strip-unneeded {} + \
    && mkdir -p "$outdir" \
    && "$py" -m wheel pack -d "$outdir" "$work"/*/ >/dev/null \
    || { echo "mmcv_strip_wheel: could not strip $whl" >&2; rm -rf "$work"; return 1; }
  rm -rf "$work"
}
