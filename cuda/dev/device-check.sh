#!/usr/bin/env bash
# The CUDA backend on a real GPU, in one device call (about 5-9 minutes on an H100/H200; the device
# tool allows 10 per command: SKIP_SANITIZER=1 on a first run, SKIP_TESTS=1 on a second):
#   build (sm_90 only) in /tmp, the CUDA suite (test_cuda: device/host/external memory, async,
#   device KV cache, 16K prefill, 128K decode, bad input, no allocation after create), the shared
#   suites on CUDA (parity adds CUDA by itself; bad_input, numerics, noalloc and api pick CUDA through
#   AUTO), the same suites on the CPU with the GPU hidden (CUDA_VISIBLE_DEVICES=), then
#   compute-sanitizer memcheck and racecheck on test_cuda in short mode. Logs go to $OUT (at most 8
#   files); the last lines printed are the summary.
#
# From the repo root on the device machine (carry .device-carry):
#   source .device-carry/env.sh; bash cuda/dev/device-check.sh
# Env: ARCHS (default 90; 80 for an A100), BUILD (default /tmp/ea-cuda-check), SKIP_SANITIZER=1, SKIP_TESTS=1,
#      JOBS (ninja -j), SAN_TIMEOUT (seconds per sanitizer tool, default 120; status 124 = ran out of time),
#      EDGEATTN_TEST_SEED to repeat a run.
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
B=${BUILD:-/tmp/ea-cuda-check}
ARCHS=${ARCHS:-90}
export PATH=/usr/local/cuda/bin:$PATH
sum=$OUT/summary.txt
: > "$sum"
note() { echo "$*" | tee -a "$sum"; }
t0=$SECONDS

note "== $(date -u +%FT%TZ) $(git rev-parse --short HEAD 2>/dev/null) on $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"

# 1. build: release, sm_$ARCHS only (fast), OpenCL off (its own script checks it)
if [[ -f $B/build.ninja ]]; then
    meson setup --reconfigure "$B" -Dbuildtype=release -Dnvcc_archs="$ARCHS" -Dopencl=disabled -Dcuda=enabled \
        > "$OUT/build.log" 2>&1
else
    meson setup "$B" -Dbuildtype=release -Dnvcc_archs="$ARCHS" -Dopencl=disabled -Dcuda=enabled > "$OUT/build.log" 2>&1
fi
rc=$?
((rc == 0)) && { ninja -C "$B" ${JOBS:+-j "$JOBS"} >> "$OUT/build.log" 2>&1; rc=$?; }
if ((rc != 0)); then
    tail -40 "$OUT/build.log"
    note "BUILD FAILED (see build.log)"
    exit 1
fi
note "build ok in $((SECONDS - t0)) s ($(grep -c warning "$OUT/build.log") warning lines)"

# 2. the CUDA suite and the shared suites on CUDA (a missing device is a failure here)
export EDGEATTN_TEST_REQUIRE_CUDA=1
rc_cuda=0
rc_cpu=0
if [[ "${SKIP_TESTS:-0}" != 1 ]]; then
t=$SECONDS
meson test -C "$B" --no-rebuild --print-errorlogs --timeout-multiplier 2 \
    cuda parity bad_input numerics noalloc api cuda_mockcuda parity_mockcuda bad_input_mockcuda numerics_mockcuda \
    > "$OUT/test-cuda.log" 2>&1
rc_cuda=$?
grep -E "^CUDA:|16K prefill|128K decode|ceilings:|queue note|parity over|^  cuda" "$B/meson-logs/testlog.txt" | sort -u | tee -a "$sum"
awk '/^Summary of Failures/ { exit } /^ *[0-9]+\/[0-9]+ / { print }' "$OUT/test-cuda.log" | tee -a "$sum"
note "CUDA suites: $([[ $rc_cuda == 0 ]] && echo ok || echo "FAILED ($rc_cuda)") in $((SECONDS - t)) s"
cp "$B/meson-logs/testlog.txt" "$OUT/testlog-cuda.txt"

# 3. the same suites on the CPU backend (AUTO with the GPU hidden)
t=$SECONDS
CUDA_VISIBLE_DEVICES= EDGEATTN_TEST_REQUIRE_CUDA=0 meson test -C "$B" --no-rebuild --print-errorlogs \
    api noalloc bad_input numerics header_c > "$OUT/test-cpu.log" 2>&1
rc_cpu=$?
awk '/^Summary of Failures/ { exit } /^ *[0-9]+\/[0-9]+ / { print }' "$OUT/test-cpu.log" | tee -a "$sum"
note "CPU-only suites (GPU hidden): $([[ $rc_cpu == 0 ]] && echo ok || echo "FAILED ($rc_cpu)") in $((SECONDS - t)) s"
fi

# 4. compute-sanitizer on test_cuda, short mode
rc_san=0
if [[ "${SKIP_SANITIZER:-0}" != 1 ]] && command -v compute-sanitizer >/dev/null; then
    for tool in memcheck racecheck; do
        t=$SECONDS
        EDGEATTN_TEST_CUDA_SHORT=1 timeout "${SAN_TIMEOUT:-120}" compute-sanitizer --tool "$tool" --error-exitcode 99 \
            --print-limit 20 "$B/tests/cuda/test_cuda" > "$OUT/sanitizer-$tool.log" 2>&1
        r=$?
        ((r == 0)) || rc_san=$r
        note "compute-sanitizer $tool: $([[ $r == 0 ]] && echo clean || echo "status $r") in $((SECONDS - t)) s;" \
             "$(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$OUT/sanitizer-$tool.log" | tail -1)"
        grep -E "^\[  (PASSED|FAILED)" "$OUT/sanitizer-$tool.log" | tee -a "$sum"
    done
else
    note "compute-sanitizer skipped"
fi

note "== total $((SECONDS - t0)) s: cuda $rc_cuda, cpu $rc_cpu, sanitizer $rc_san"
((rc_cuda == 0 && rc_cpu == 0 && rc_san == 0))
