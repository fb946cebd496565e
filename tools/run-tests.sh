#!/usr/bin/env bash
# The test command of the README, and exactly what .ci/run calls.
#
#   tools/run-tests.sh [STAGE...]      stages: release asan aarch64 jetson (default: all four)
#
#   release   optimised native build, every test suite
#   asan      AddressSanitizer + UndefinedBehaviorSanitizer build, every test suite
#   aarch64   cross build with cross/aarch64-linux-gnu.ini, tests under qemu-aarch64 -cpu max
#             (every aarch64 SIMD tier runs)
#   jetson    cross build with cross/jetson-orin.ini, tests under qemu -cpu cortex-a76 (Orin's features)
#
# Installs what is missing first (tools/install-deps.sh; EDGEATTN_NO_INSTALL=1 skips that). Build
# folders live under $EDGEATTN_BUILD_ROOT (default: build/).
#
# CUDA: where nvcc exists (PATH, else /usr/local/cuda/bin; EDGEATTN_NVCC=/path/nvcc picks one,
# EDGEATTN_NVCC=none builds without CUDA) the kernels' fatbin is built once, in $root/fatbin, and
# every stage embeds that same file (-Dnvcc_fatbin): nvcc runs again only when a kernel source, the
# architecture list or nvcc changes. The Jetson stage embeds it too (it holds sm_87, all Orin needs).
# Under qemu no GPU or OpenCL device exists, so the cross stages build no CUDA/OpenCL test suites
# (-Dgpu_tests=false); the libraries themselves are built with both backends, as for a board.
#
# Every stage runs even if an earlier one failed; the exit status is non-zero if any stage failed.
# While tests run, a line every 30 s says which programs are still running. The output ends with
# each test program's cmocka closing lines per stage and the counts: test cases (cmocka cases, or a
# whole program where it has none) that ran, passed, failed, and were skipped (a suite that cannot
# run here exits 77: meson's "skipped"), per stage and in all.
# EDGEATTN_TEST_SEED=N repeats a run's random inputs; EDGEATTN_TEST_LONG=1 runs the long sizes.
set -euo pipefail

cd "$(dirname "$0")/.."
root=${EDGEATTN_BUILD_ROOT:-build}
stages=("$@")
((${#stages[@]})) || stages=(release asan aarch64 jetson)
for s in "${stages[@]}"; do
    case "$s" in
    release | asan | aarch64 | jetson) ;;
    *) echo "run-tests: unknown stage '$s' (release, asan, aarch64, jetson)" >&2; exit 2 ;;
    esac
done
host=$(uname -m)
# shellcheck source=tools/common.sh
. tools/common.sh

section() { printf '\n======== %s ========\n' "$*"; }
t_start=$SECONDS
echo "run-tests: stages ${stages[*]} in $root; $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

if [[ "$host" == x86_64 ]]; then
    deps
else
    deps --native
fi

# cpu_seconds: user + system seconds of this script's finished children so far (the processor time
# a stage took, whatever else the machine was doing)
tick=$(getconf CLK_TCK)
cpu_seconds() {
    awk -v t="$tick" '{ sub(/^.*\) /, ""); print int(($14 + $15) / t) }' "/proc/$$/stat"
}

# heartbeat PID DIR LABEL: every 30 s while PID (meson test) lives, the tests done so far and the
# test programs running now
heartbeat() {
    local pid=$1 dir=$2 label=$3 t=0
    while sleep 30; do
        kill -0 "$pid" 2>/dev/null || return 0
        t=$((t + 30))
        local done running
        done=$(grep -Eo '^ *[0-9]+/[0-9]+ ' "$dir/run-tests.out" 2>/dev/null | tail -1 | tr -d ' ' || true)
        running=$(ps -o args= --ppid "$pid" 2>/dev/null |
            awk '{ for (i = 1; i <= NF; i++) { # the program: the first word past qemu and its options
                       if ($i == "-L" || $i == "-E" || $i == "-cpu") { i++; continue }
                       n = $i; sub(/.*\//, "", n)
                       if ($i ~ /^-/ || n ~ /^qemu/) continue
                       print n; break } }' |
            sort | uniq -c | awk '{ printf "%s%s%s", sep, $2, ($1 > 1 ? " x" $1 : ""); sep = ", " }')
        echo "   .. $label: ${t} s into the tests, ${done:-0/?} done; running: ${running:-(starting)}"
    done
}

# build_and_test DIR TIMEOUT_MULTIPLIER: builds everything (meson test alone builds only what the
# tests need), then runs every suite, printing the log of any test that fails
build_and_test() {
    local dir=$1 mult=$2 rc
    rm -f "$dir/meson-logs/testlog.txt" "$dir/run-tests.out" # no stale counts if the build fails
    ninja -C "$dir"
    # meson prints a line per finished test; the heartbeat fills the silences in between
    : > "$dir/run-tests.out"
    PYTHONUNBUFFERED=1 meson test -C "$dir" --no-rebuild --print-errorlogs --timeout-multiplier "$mult" \
        > "$dir/run-tests.out" 2>&1 &
    local mpid=$!
    tail -n +1 -f --pid="$mpid" "$dir/run-tests.out" &
    local tpid=$!
    heartbeat "$mpid" "$dir" "$(basename "$dir")" &
    local hpid=$!
    rc=0
    wait "$mpid" || rc=$?
    wait "$tpid" || true
    kill "$hpid" 2>/dev/null || true
    wait "$hpid" 2>/dev/null || true
    return "$rc"
}

stage_release() {
    setup "$root/release" --buildtype=release -Dgpu_tests=true "${cuda_opts[@]}"
    build_and_test "$root/release" 1
}

stage_asan() {
    setup "$root/asan" --buildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false \
        -Dgpu_tests=true "${cuda_opts[@]}"
    export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
    export LSAN_OPTIONS=suppressions=$PWD/tools/lsan.supp:print_suppressions=0
    build_and_test "$root/asan" 3
}

stage_cross() { # NAME CROSS_FILE
    if [[ "$host" != x86_64 ]]; then
        echo "skipped: cross stages run on an x86_64 build machine"
        return 0
    fi
    # no CUDA/OpenCL suites: qemu has neither a GPU nor an OpenCL device, they could only skip
    setup "$root/$1" --cross-file "$2" --buildtype=release -Dgpu_tests=false "${cuda_opts[@]}"
    # binfmt_misc is not needed: meson runs every test through the cross file's exe_wrapper (qemu)
    build_and_test "$root/$1" 6
}

failed=()
times_line=()
section "CUDA fatbin"
t0=$SECONDS c0=$(cpu_seconds)
cuda_opts=()
if ! cuda_options; then
    echo "run-tests: the CUDA fatbin failed to build" >&2
    failed+=(fatbin)
    cuda_opts=(-Dcuda=disabled -Dnvcc_fatbin=)
fi
times_line+=("fatbin $((SECONDS - t0)) s (cpu $(($(cpu_seconds) - c0)) s)")

for s in "${stages[@]}"; do
    case "$s" in
    release) section "release build + tests ($root/release)"; fn=(stage_release) ;;
    asan) section "AddressSanitizer + UBSan build + tests ($root/asan)"; fn=(stage_asan) ;;
    aarch64) section "aarch64 cross build, tests under qemu ($root/aarch64)"; fn=(stage_cross aarch64 cross/aarch64-linux-gnu.ini) ;;
    jetson) section "Jetson Orin cross build, tests under qemu ($root/jetson)"; fn=(stage_cross jetson cross/jetson-orin.ini) ;;
    esac
    t0=$SECONDS c0=$(cpu_seconds)
    set +e
    ( set -e; "${fn[@]}" )
    rc=$?
    set -e
    dt=$((SECONDS - t0)) dc=$(($(cpu_seconds) - c0))
    echo "-- stage $s: $([[ $rc == 0 ]] && echo ok || echo "FAILED (status $rc)") in $dt s (cpu $dc s)"
    times_line+=("$s $dt s (cpu $dc s)")
    ((rc == 0)) || failed+=("$s")
done

# Per stage, from meson's log: each test program's name and its cmocka closing lines (or meson's
# result when it printed none), then the counts. A test case is a cmocka case, or a whole program
# where it printed no cmocka count; a program that exits 77 is skipped, never passed; a program that
# failed after cmocka counted no failure (a sanitizer report at exit, a crash) counts one failure.
section "summary"
total_p=0 total_f=0 total_s=0
for s in "${stages[@]}"; do
    log="$root/$s/meson-logs/testlog.txt"
    if [[ ! -f "$log" ]]; then
        echo "-- $s: no test log (the stage failed before its tests ran)"
        continue
    fi
    echo "-- $s"
    awk 'function flush() {
             if (name == "") return
             ok = (result ~ /^exit status 0$/)
             if (!cm) {
                 if (ok) { pass++; r = "passed" }
                 else if (result ~ /^exit status 77$/) { skip++; r = "skipped" }
                 else { fail++; r = "FAILED" }
                 printf "%s (%s: %s)\n", name, r, result
             } else if (!ok && !pf) {
                 fail++
                 printf "   %s FAILED after its cmocka cases: %s\n", name, result
             }
             name = ""
         }
         /^test:/ { flush(); sub(/^test: */, ""); name = $0; cm = 0; pf = 0; result = "" }
         /^result:/ { sub(/^result: */, ""); result = $0 }
         /^\[  (PASSED|FAILED|SKIPPED) *\] [0-9]+ test\(s\)/ && name != "" {
             if (!cm) print name
             print; cm = 1
             n = $0; sub(/^[^]]*\] */, "", n); n += 0
             if ($0 ~ /PASSED/) pass += n; else if ($0 ~ /SKIPPED/) skip += n; else { fail += n; pf += n }
         }
         END { flush(); printf "%d %d %d\n", pass, fail, skip > "/dev/stderr" }' "$log" 2> "$root/$s/counts.txt"
    read -r p f k < "$root/$s/counts.txt"
    total_p=$((total_p + p)) total_f=$((total_f + f)) total_s=$((total_s + k))
    echo "$s: $((p + f)) tests ran: $p passed, $f failed; $k skipped  (meson, by program: $(
        grep -E '^(Ok|Expected Fail|Fail|Unexpected Pass|Skipped|Timeout): ' "$log" | tr -s ' ' | tr '\n' ' '))"
done
echo
echo "times: ${times_line[*]/%/;} total $((SECONDS - t_start)) s; load average now $(cut -d' ' -f1-3 /proc/loadavg)"
echo "total: $((total_p + total_f)) tests ran: $total_p passed, $total_f failed; $total_s skipped"
# one plain line for CI readers: test cases over all stages
echo "tests: $total_p passed, $total_f failed, $total_s skipped"
if ((${#failed[@]})); then
    echo "run-tests: FAILED: ${failed[*]}"
    exit 1
fi
echo "run-tests: all stages passed (${stages[*]})"
