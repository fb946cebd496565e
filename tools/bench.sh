#!/usr/bin/env bash
# Set-up and measurement in one command: installs what is missing (tools/install-deps.sh --native),
# builds the release configuration, and runs edgebench on the default backend. Arguments go to
# edgebench:  tools/bench.sh --quick    tools/bench.sh --tier avx2 --json out.json
# The build folder is $EDGEATTN_BUILD_ROOT/release (default build/release), the same one
# tools/run-tests.sh uses.
set -euo pipefail

cd "$(dirname "$0")/.."
root=${EDGEATTN_BUILD_ROOT:-build}
export PATH=/usr/local/cuda/bin:$PATH

tools/install-deps.sh --native
if [[ -f "$root/release/build.ninja" ]]; then
    meson setup --reconfigure "$root/release" --buildtype=release >/dev/null
else
    meson setup "$root/release" --buildtype=release
fi
ninja -C "$root/release"
echo
exec "$root/release/tools/edgebench/edgebench" "$@"
