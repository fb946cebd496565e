#!/usr/bin/env bash
# Installs what edgeattn's build, tests and cross-builds need on Debian 12 / Ubuntu: the project's
# one package list (below; docs/BUILDING.md explains it), and nothing when everything is already there.
#   tools/install-deps.sh            every package: native build and tests, PoCL (OpenCL on the CPU,
#                                    for the OpenCL backend's tests), aarch64 cross compiler + qemu
#   tools/install-deps.sh --native   only what a native build and its tests need (tools/bench.sh,
#                                    or a board): no cross tools, no PoCL
#   tools/install-deps.sh --list     the list with what each package provides and whether it is here
# Runs apt-get directly as root (CI), through sudo otherwise. Without apt-get (another distribution,
# packages from elsewhere) it prints the list, says what is missing, and exits non-zero only if
# something is: without dpkg, it looks for the commands, pkg-config modules and files instead.
# tools/run-tests.sh and tools/bench.sh skip this step when EDGEATTN_NO_INSTALL=1.
set -euo pipefail

# One package a line: Debian name | native (bench.sh, a board) or full (run-tests.sh) | how to see
# it without dpkg (cmd:NAME on PATH, pc:NAME pkg-config module, hdr:NAME.h compiles, file:PATH) |
# what it provides.
packages() {
    cat <<'EOF'
build-essential           | native | cmd:cc cmd:make               | C compiler, make
meson                     | native | cmd:meson                     | the build system (>= 1.0)
ninja-build               | native | cmd:ninja                     | the build runner
pkg-config                | native | cmd:pkg-config                | finds cmocka, OpenCL, CLBlast
libcmocka-dev             | native | pc:cmocka                     | the test framework
ocl-icd-opencl-dev        | native | pc:OpenCL                     | OpenCL ICD loader (opened at run time, never linked)
opencl-headers            | native | hdr:CL/cl.h                   | OpenCL headers (the backend is built where found)
libclblast-dev            | native | pc:clblast                    | CLBlast header (the OpenCL unfused path; the library is opened at run time)
xxd                       | native | cmd:xxd                       | (on the list since the first set-up; no build step uses it today)
pocl-opencl-icd           | full   | file:/etc/OpenCL/vendors/pocl.icd | an OpenCL device on the CPU for the OpenCL tests
clinfo                    | full   | cmd:clinfo                    | lists OpenCL devices
oclgrind                  | full   | cmd:oclgrind                  | OpenCL kernels under a checking simulator
clang                     | full   | cmd:clang                     | builds the libFuzzer targets (tools/fuzz.sh)
libclang-rt-dev           | full   | cmd:clang                     | libFuzzer and sanitizer runtimes for clang
gcc-aarch64-linux-gnu     | full   | cmd:aarch64-linux-gnu-gcc     | aarch64 cross compiler
libc6-dev-arm64-cross     | full   | file:/usr/aarch64-linux-gnu/include/stdio.h | aarch64 C library for the cross compiler
qemu-user                 | full   | cmd:qemu-aarch64              | runs the aarch64 tests
libcmocka-dev:arm64       | full   | file:/usr/lib/aarch64-linux-gnu/pkgconfig/cmocka.pc | cmocka for aarch64
libclblast-dev:arm64      | full   | file:/usr/lib/aarch64-linux-gnu/pkgconfig/clblast.pc | CLBlast for aarch64
ocl-icd-opencl-dev:arm64  | full   | file:/usr/lib/aarch64-linux-gnu/pkgconfig/OpenCL.pc | OpenCL loader for aarch64
EOF
}

mode=full
case "${1:-}" in
--native) mode=native ;;
--list) mode=list ;;
"") ;;
*) echo "usage: tools/install-deps.sh [--native | --list]" >&2; exit 2 ;;
esac

trim() { local s=$1; s=${s#"${s%%[![:space:]]*}"}; printf '%s' "${s%"${s##*[![:space:]]}"}"; }
want=() checks=() provides=()
while IFS='|' read -r name group check what; do
    name=$(trim "$name") group=$(trim "$group") check=$(trim "$check") what=$(trim "$what")
    [[ -n "$name" ]] || continue
    [[ "$mode" != native || "$group" == native ]] || continue
    want+=("$name") checks+=("$check") provides+=("$what")
done < <(packages)

have_dpkg=0
command -v dpkg-query >/dev/null && have_dpkg=1
native_arch=
((have_dpkg)) && native_arch=$(dpkg --print-architecture)

# installed INDEX: is want[INDEX] here? dpkg's word where there is dpkg, else the package's checks.
# With dpkg, a name without ":arch" means the native (or arch-independent) package; with multiarch
# both an amd64 and an arm64 instance may be installed, so look at each instance's architecture.
installed() {
    local p=${want[$1]}
    if ((have_dpkg)); then
        local name=${p%%:*} arch=${p#*:}
        [[ "$arch" == "$p" ]] && arch=$native_arch
        local lines
        lines=$(dpkg-query -W -f='${Architecture} ${Status}\n' "$name" 2>/dev/null || true)
        grep -Eq "^($arch|all) install ok installed$" <<<"$lines"
        return
    fi
    local c
    for c in ${checks[$1]}; do
        case "$c" in
        cmd:*) command -v "${c#cmd:}" >/dev/null || return 1 ;;
        pc:*) pkg-config --exists "${c#pc:}" 2>/dev/null || return 1 ;;
        hdr:*) printf '#include <%s>\n' "${c#hdr:}" | ${CC:-cc} -E -x c - >/dev/null 2>&1 || return 1 ;;
        file:*) [[ -e "${c#file:}" ]] || return 1 ;;
        esac
    done
}

missing=()
list() { # prints the list with each package's state
    local i
    for i in "${!want[@]}"; do
        if installed "$i"; then s=ok; else s=MISSING; fi
        printf '  %-8s %-26s %s\n' "$s" "${want[$i]}" "${provides[$i]}"
    done
}
for i in "${!want[@]}"; do
    installed "$i" || missing+=("${want[$i]}")
done

if [[ "$mode" == list ]]; then
    echo "install-deps: the project's packages (Debian names; $(((have_dpkg)) && echo "dpkg's word" || echo "no dpkg: commands, pkg-config modules and files looked for"))"
    list
    exit 0
fi
if ((${#missing[@]} == 0)); then
    echo "install-deps: all ${#want[@]} packages present"
    exit 0
fi
echo "install-deps: missing ${missing[*]}"

if ! command -v apt-get >/dev/null; then
    echo "install-deps: no apt-get here; install these (Debian names) or their equivalents by hand:" >&2
    list >&2
    echo "(EDGEATTN_NO_INSTALL=1 skips this step in tools/run-tests.sh and tools/bench.sh)" >&2
    exit 1
fi
sudo=()
if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null || { echo "install-deps: not root and no sudo" >&2; exit 1; }
    sudo=(sudo)
fi
if [[ "$mode" == full ]] && [[ "$native_arch" != arm64 ]] &&
   ! dpkg --print-foreign-architectures | grep -qx arm64; then
    "${sudo[@]}" dpkg --add-architecture arm64
fi
"${sudo[@]}" apt-get update
# the whole list (apt leaves the packages already present alone)
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${want[@]}"
