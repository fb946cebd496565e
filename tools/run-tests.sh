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
# Installs what is missing first (tools/install-deps.sh). Build folders live under
# $EDGEATTN_BUILD_ROOT (default: build/). Every stage runs even if an earlier one failed; the exit
# status is non-zero if any stage failed. The output ends with each test's cmocka closing lines.
# EDGEATTN_TEST_SEED=N repeats a run's random inputs; EDGEATTN_TEST_LONG=1 runs the long sizes.
set -euo pipefail

cd "$(dirname "$0")/.."
root=${EDGEATTN_BUILD_ROOT:-build}
stages=("$@")
((${#stages[@]})) || stages=(release asan aarch64 jetson)
host=$(uname -m)
export PATH=/usr/local/cuda/bin:$PATH

if [[ "$host" == x86_64 ]]; then
    tools/install-deps.sh
else
    tools/install-deps.sh --native
fi

section() { printf '\n======== %s ========\n' "$*"; }

# setup DIR [meson args...]: configure a build folder, or reconfigure it when it exists
setup() {
    local dir=$1
    shift
    if [[ -f "$dir/build.ninja" ]]; then
        meson setup --reconfigure "$dir" "$@"
    else
        meson setup "$dir" "$@"
    fi
}

# build_and_test DIR TIMEOUT_MULTIPLIER: builds everything (meson test alone builds only what the
# tests need), then runs every suite, printing the log of any test that fails
build_and_test() {
    ninja -C "$1"
    meson test -C "$1" --no-rebuild --print-errorlogs --timeout-multiplier "$2"
}

stage_release() {
    setup "$root/release" --buildtype=release
    build_and_test "$root/release" 1
}

stage_asan() {
    setup "$root/asan" --buildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false
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
    setup "$root/$1" --cross-file "$2" --buildtype=release
    # binfmt_misc is not needed: meson runs every test through the cross file's exe_wrapper (qemu)
    build_and_test "$root/$1" 6
}

failed=()
for s in "${stages[@]}"; do
    case "$s" in
    release) section "release build + tests ($root/release)"; fn=(stage_release) ;;
    asan) section "AddressSanitizer + UBSan build + tests ($root/asan)"; fn=(stage_asan) ;;
    aarch64) section "aarch64 cross build, tests under qemu ($root/aarch64)"; fn=(stage_cross aarch64 cross/aarch64-linux-gnu.ini) ;;
    jetson) section "Jetson Orin cross build, tests under qemu ($root/jetson)"; fn=(stage_cross jetson cross/jetson-orin.ini) ;;
    *) echo "run-tests: unknown stage '$s' (release, asan, aarch64, jetson)" >&2; exit 2 ;;
    esac
    start=$SECONDS
    set +e
    ( set -e; "${fn[@]}" )
    rc=$?
    set -e
    echo "-- stage $s: $([[ $rc == 0 ]] && echo ok || echo "FAILED (status $rc)") in $((SECONDS - start)) s"
    ((rc == 0)) || failed+=("$s")
done

# The closing lines of every test program (cmocka's [  PASSED  ] / [  FAILED  ] and the like), per
# stage, from meson's log, then meson's own count.
section "summary"
total_pass=0
total_fail=0
for s in "${stages[@]}"; do
    log="$root/$s/meson-logs/testlog.txt"
    [[ -f "$log" ]] || { echo "$s: no test log"; continue; }
    echo "-- $s"
    # one line per test: its cmocka closing lines, or meson's result when it printed none
    # The program's name on one line, then its cmocka closing line alone on the next (or meson's
    # result when it printed none); test cases are counted for the total below.
    awk 'function flush() {
             if (name == "") return
             if (!shown) {
                 printf "%s (%s)\n", name, result
                 if (result ~ /exit status 0/) pass++; else if (result !~ /exit status 77/) fail++ # 77: skipped
             }
             name = ""
         }
         /^test:/ { flush(); sub(/^test: */, ""); name = $0; shown = 0; result = "" }
         /^result:/ { sub(/^result: */, ""); result = $0 }
         /^\[  (PASSED|FAILED) *\] [0-9]+ test/ && name != "" {
             printf "%s\n%s\n", name, $0; shown = 1
             if ($0 ~ /PASSED/) pass += $4; else fail += $4
         }
         END { flush(); printf "%d %d\n", pass, fail > "/dev/stderr" }' "$log" 2> "$root/$s/counts.txt"
    read -r p f < "$root/$s/counts.txt"
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
    grep -E '^(Ok|Fail|Skipped|Timeout): ' "$log" | tr -s ' ' | tr '\n' ' '
    echo
done
# one plain line for CI readers: test cases over all stages (cmocka cases, or whole programs that
# have no cmocka output)
echo "tests: $total_pass passed, $total_fail failed"
if ((${#failed[@]})); then
    echo "run-tests: FAILED stages: ${failed[*]}"
    exit 1
fi
echo "run-tests: all stages passed (${stages[*]})"
