#!/usr/bin/env bash
# Set-up and measurement in one command: installs what is missing (tools/install-deps.sh --native;
# EDGEATTN_NO_INSTALL=1 skips it), builds the library and edgebench (release; no test suites), and
# runs edgebench on the default backend.
#
#   tools/bench.sh [MESON_OPTIONS...] [--] [EDGEBENCH_ARGS...]
#
#   tools/bench.sh --quick                          edgebench --quick
#   tools/bench.sh --tier avx2 --json out.json
#   tools/bench.sh -Dcuda=disabled -- --quick       meson options first, then `--`, then edgebench's
#   EDGEATTN_MESON_OPTIONS="-Dsimd=false" tools/bench.sh
#
# Meson options are the leading -D... arguments (all arguments before a `--`) and the words of
# EDGEATTN_MESON_OPTIONS. Without any, the build folder is $EDGEATTN_BUILD_ROOT/release (default
# build/release), the one tools/run-tests.sh uses; with some, a folder of their own,
# $EDGEATTN_BUILD_ROOT/bench-HASH, so the release folder's options stay as they are.
# CUDA: as in tools/run-tests.sh, the fatbin is built once per checkout ($root/fatbin, a few minutes
# the first time) where nvcc exists; EDGEATTN_NVCC=none or -Dcuda=disabled builds without it.
set -euo pipefail

cd "$(dirname "$0")/.."
root=${EDGEATTN_BUILD_ROOT:-build}
# shellcheck source=tools/common.sh
. tools/common.sh

meson_opts=()
read -r -a meson_opts <<< "${EDGEATTN_MESON_OPTIONS:-}"
if [[ " $* " == *" -- "* ]]; then
    while (($#)) && [[ "$1" != -- ]]; do meson_opts+=("$1"); shift; done
    shift
else
    while (($#)) && [[ "$1" == -D* ]]; do meson_opts+=("$1"); shift; done
fi

deps --native

own_cuda=0
for o in "${meson_opts[@]}"; do
    case "$o" in
    -Dcuda=disabled) export EDGEATTN_NVCC=none ;;
    -Dnvcc_archs=* | -Dnvcc_fatbin=*) own_cuda=1 ;; # this folder runs nvcc itself, as asked
    esac
done
if ((own_cuda)); then
    find_nvcc
    cuda_opts=()
else
    cuda_options
fi

if ((${#meson_opts[@]})); then
    dir=$root/bench-$(printf '%s\n' "${meson_opts[@]}" | sha1sum | cut -c1-8)
    echo "bench: meson options ${meson_opts[*]}: build folder $dir"
else
    dir=$root/release
fi
mkdir -p "$root"
setup "$dir" --buildtype=release "${cuda_opts[@]}" "${meson_opts[@]}" > "$dir.setup.log" 2>&1 ||
    { cat "$dir.setup.log"; exit 1; }
grep -E '^Message:|^  +(cuda|opencl|simd|buildtype) *:' "$dir.setup.log" || true
ninja -C "$dir" tools/edgebench/edgebench
echo
exec "$dir/tools/edgebench/edgebench" "$@"
