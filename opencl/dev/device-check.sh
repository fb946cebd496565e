#!/usr/bin/env bash
# The OpenCL backend on the device machine (NVIDIA's OpenCL on the H100/H200), in one call:
#
#   source .device-carry/env.sh; opencl/dev/device-check.sh          (from the repository root)
#
# Builds in /tmp (CUDA off, so AUTO in the shared suites takes the OpenCL device), runs test_opencl,
# the shared suites (parity adds the forced OpenCL backend; bad_input, numerics and noalloc run
# through AUTO on the device named by EDGEATTN_OPENCL_DEVICE, default "nvidia"), then edgebench's
# OpenCL suite (fused beside unfused CLBlast, ceilings measured in the same run). Writes at most 7
# files to $OUT: build.log, test_opencl.log, suites.log, bench.txt, bench.json, env.txt, sweep.txt.
# Environment: EDGEATTN_OPENCL_DEVICE (default nvidia), BENCH_ARGS (extra edgebench options),
# BENCH_ONLY=1 (skip the tests), TILE_SWEEP="pf=BMxTMxBN[xTN] ..." or TILE_SWEEP=default (times the
# measured prefill and decode shapes per EDGEATTN_OPENCL_TILES value into sweep.txt, before the suite).
set -uo pipefail
out=${OUT:-/tmp/ocl-device-out}
mkdir -p "$out"
b=/tmp/edgeattn-ocl-build
export EDGEATTN_OPENCL_DEVICE=${EDGEATTN_OPENCL_DEVICE:-nvidia}
export EDGEATTN_TEST_REQUIRE_OPENCL=1
export EDGEATTN_TEST_BACKEND=opencl # tc_create: AUTO configs of the shared suites run on OpenCL
status=0
step() { printf '\n==== %s\n' "$*"; }

{
    date -u
    nvidia-smi -L 2>&1 || true
    (command -v clinfo >/dev/null && clinfo -l) 2>&1 || echo "clinfo: not installed"
    echo "OCL_ICD_VENDORS=${OCL_ICD_VENDORS:-} LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
    echo "EDGEATTN_OPENCL_DEVICE=$EDGEATTN_OPENCL_DEVICE"
} > "$out/env.txt" 2>&1

step "build ($b)"
{
    if [[ -f "$b/build.ninja" ]]; then
        meson setup --reconfigure "$b" --buildtype=release -Dcuda=disabled -Dopencl=enabled
    else
        meson setup "$b" --buildtype=release -Dcuda=disabled -Dopencl=enabled
    fi && ninja -C "$b"
} > "$out/build.log" 2>&1 || { echo "build FAILED (see build.log)"; tail -30 "$out/build.log"; exit 1; }
tail -3 "$out/build.log"

if [[ "${BENCH_ONLY:-0}" != 1 ]]; then
    step "test_opencl"
    timeout 300 "$b/tests/opencl/test_opencl" > "$out/test_opencl.log" 2>&1 || status=1
    grep -E '^\[  (PASSED|FAILED)|OpenCL device|tiles|ceilings|note:' "$out/test_opencl.log"

    step "shared suites on OpenCL"
    : > "$out/suites.log"
    for s in parity bad_input numerics noalloc mix; do
        echo "---- $s" >> "$out/suites.log"
        timeout 400 "$b/tests/test_$s" >> "$out/suites.log" 2>&1 || status=1
    done
    grep -E '^---- |^\[  (PASSED|FAILED)|opencl \(|worst err' "$out/suites.log"
fi

if [[ -n "${TILE_SWEEP:-}" ]]; then
    step "tile sweep (sweep.txt)"
    [[ "$TILE_SWEEP" == default ]] &&
        TILE_SWEEP="pf=32x4x32 pf=16x4x64x8 pf=32x4x32x8 pf=32x8x32 pf=16x2x32 pf=32x2x32x8 pf=16x4x32 pf=32x4x16 dec=4x1x64 dec=8x1x32 dec=16x2x64"
    : > "$out/sweep.txt"
    for t in $TILE_SWEEP; do
        echo "---- EDGEATTN_OPENCL_TILES=$t" >> "$out/sweep.txt"
        EDGEATTN_OPENCL_TILES=$t timeout 60 "$b/tools/edgebench/edgebench" --backend opencl --reps 3 --warmup 1 \
            --no-ceiling --no-ref \
            --case "prefill:H=32,N=4096,D=128,q=f16,kv=f16,out=f16,name=pf-4k" \
            --case "prefill:H=32,N=4096,D=128,causal=1,q=f16,kv=f16,out=f16,name=pf-4k-causal" \
            --case "decode:H=32,KVH=8,NKV=32768,D=128,q=f16,kv=f16,out=f16,name=dec-32k" 2>&1 |
            grep -E '^(pf|dec)|rror|failed' >> "$out/sweep.txt"
    done
    cat "$out/sweep.txt"
fi

step "edgebench --backend opencl"
# shellcheck disable=SC2086
timeout 420 "$b/tools/edgebench/edgebench" --backend opencl --reps 5 --json "$out/bench.json" ${BENCH_ARGS:-} \
    > "$out/bench.txt" 2>&1 || status=1
cat "$out/bench.txt"
exit $status
