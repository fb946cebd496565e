#!/usr/bin/env bash
# The libFuzzer targets of tests/fuzz: builds them with clang, AddressSanitizer and UBSan in
# $EDGEATTN_BUILD_ROOT/fuzz (default build/fuzz), then runs each for SECONDS (default 60) over a
# temporary copy of its corpus (tests/fuzz/corpus/TARGET plus the seeds the target writes itself), so
# the repository is never written. Installs nothing: clang and its runtimes come with
# tools/install-deps.sh. Exits non-zero on any finding (crash, sanitizer report, invariant violated,
# leak, timeout); the input is kept under $EDGEATTN_BUILD_ROOT/fuzz/findings/.
#
#   tools/fuzz.sh [SECONDS] [TARGET...]       targets: fuzz_api (default: all)
#   EDGEATTN_FUZZ_KEEP=DIR tools/fuzz.sh 600  also keep the grown corpus in DIR/TARGET
#
# tests/fuzz/README.md says how to reproduce a finding and how to add seeds.
set -euo pipefail

cd "$(dirname "$0")/.."
secs=${1:-60}
[[ "$secs" =~ ^[0-9]+$ ]] || { echo "usage: tools/fuzz.sh [SECONDS] [TARGET...]" >&2; exit 2; }
(($# > 0)) && shift
targets=("$@")
((${#targets[@]})) || targets=(fuzz_api)
root=${EDGEATTN_BUILD_ROOT:-build}
dir=$root/fuzz
findings=$dir/findings

command -v clang >/dev/null || { echo "fuzz: clang not found (tools/install-deps.sh installs it)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/edgeattn-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

# configure (clang, sanitizers, only the library and the targets) and build
opts=(-Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false -Dcuda=disabled -Dopencl=disabled
      -Dtests=false -Dedgebench=false --buildtype=debugoptimized)
if [[ -f "$dir/build.ninja" ]]; then
    meson setup --reconfigure "$dir" "${opts[@]}" >"$work/setup.log" 2>&1 || { cat "$work/setup.log" >&2; exit 1; }
else
    CC=clang meson setup "$dir" "${opts[@]}" >"$work/setup.log" 2>&1 || { cat "$work/setup.log" >&2; exit 1; }
fi
ninja -C "$dir" >"$work/build.log" 2>&1 || { tail -50 "$work/build.log" >&2; exit 1; }
echo "fuzz: built $dir ($(clang --version | head -1))"

export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
mkdir -p "$findings"
failed=()
for t in "${targets[@]}"; do
    exe=$dir/tests/fuzz/$t
    [[ -x "$exe" ]] || { echo "fuzz: no target $t in $dir/tests/fuzz" >&2; failed+=("$t"); continue; }
    corpus=$work/$t/corpus seeds=$work/$t/seeds log=$work/$t.log
    mkdir -p "$corpus" "$seeds"
    if [[ -d tests/fuzz/corpus/$t ]]; then
        cp tests/fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true
    fi
    "$exe" --make-seeds="$seeds" >/dev/null
    n0=$(find "$corpus" "$seeds" -type f | wc -l)
    before=$(find "$findings" -type f | wc -l)
    set +e
    "$exe" -max_total_time="$secs" -timeout=60 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$findings/$t-" "$corpus" "$seeds" >"$log" 2>&1
    rc=$?
    set -e
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    n1=$(find "$corpus" "$seeds" -type f | wc -l)
    if [[ -n "${EDGEATTN_FUZZ_KEEP:-}" ]]; then
        mkdir -p "$EDGEATTN_FUZZ_KEEP/$t"
        cp "$corpus"/* "$EDGEATTN_FUZZ_KEEP/$t"/ 2>/dev/null || true
    fi
    if ((rc != 0)) || (($(find "$findings" -type f | wc -l) > before)); then
        echo "---- $t: last lines of its log"
        tail -60 "$log"
        echo "----"
        echo "fuzz: $t: FINDING after ${runs:-?} runs (status $rc); inputs kept:"
        find "$findings" -type f -newer "$work/setup.log" | sed 's/^/    /'
        echo "  reproduce: FUZZ_API_TRACE=1 $exe INPUT   (tests/fuzz/README.md)"
        failed+=("$t")
    else
        echo "fuzz: $t: ${runs:-?} runs in $secs s (${rate:-?}/s), coverage ${cov:-?} edges, ${ft:-?} features, corpus $n1 inputs ($((n1 - n0)) new), no finding"
    fi
done
if ((${#failed[@]})); then
    echo "fuzz: FAILED: ${failed[*]}"
    exit 1
fi
