#!/usr/bin/env bash
# Installs what edgeattn's build, tests and cross-builds need on Debian 12 / Ubuntu: the project's
# one package list (docs/BUILDING.md explains it), and nothing when everything is already there.
#   tools/install-deps.sh            every package: native build and tests, PoCL (OpenCL on the CPU,
#                                    for the OpenCL backend's tests), aarch64 cross compiler + qemu
#   tools/install-deps.sh --native   only what a native build and its tests need (tools/bench.sh,
#                                    or a board): no cross tools, no PoCL
# Runs apt-get directly as root (CI), through sudo otherwise.
set -euo pipefail

native=(build-essential meson ninja-build pkg-config libcmocka-dev
        ocl-icd-opencl-dev opencl-headers libclblast-dev xxd)
full_only=(pocl-opencl-icd clinfo oclgrind gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
           libcmocka-dev:arm64 libclblast-dev:arm64 ocl-icd-opencl-dev:arm64)

want=("${native[@]}")
need_arm64=0
if [[ "${1:-}" != "--native" ]]; then
    want+=("${full_only[@]}")
    need_arm64=1
fi

# A name without ":arch" means the native (or arch-independent) package; with multiarch both an
# amd64 and an arm64 instance may be installed, so look at each instance's architecture.
native_arch=$(dpkg --print-architecture)
installed() {
    local name=${1%%:*} arch=${1#*:}
    [[ "$arch" == "$1" ]] && arch=$native_arch
    local lines
    lines=$(dpkg-query -W -f='${Architecture} ${Status}\n' "$name" 2>/dev/null || true)
    grep -Eq "^($arch|all) install ok installed$" <<<"$lines"
}
missing=()
for p in "${want[@]}"; do
    installed "$p" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
    echo "install-deps: all ${#want[@]} packages present"
    exit 0
fi
echo "install-deps: missing ${missing[*]}"

if ! command -v apt-get >/dev/null; then
    echo "install-deps: no apt-get here; install these by hand: ${missing[*]}" >&2
    exit 1
fi
sudo=()
if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null || { echo "install-deps: not root and no sudo" >&2; exit 1; }
    sudo=(sudo)
fi
if ((need_arm64)) && [[ "$native_arch" != arm64 ]] &&
   ! dpkg --print-foreign-architectures | grep -qx arm64; then
    "${sudo[@]}" dpkg --add-architecture arm64
fi
"${sudo[@]}" apt-get update
# the whole list, as docs/BUILDING.md gives it (apt leaves the packages already present alone)
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${want[@]}"
