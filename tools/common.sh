# Shared by tools/run-tests.sh and tools/bench.sh (sourced, from the repository root, after `root`
# is set): the package step, the choice of nvcc, and the CUDA fatbin that every build folder of a
# checkout shares.
#
#   EDGEATTN_NO_INSTALL=1   skip tools/install-deps.sh (packages come from elsewhere)
#   EDGEATTN_NVCC=none      build without the CUDA backend (-Dcuda=disabled) even where nvcc exists
#   EDGEATTN_NVCC=/p/nvcc   that nvcc (default: nvcc on PATH, else /usr/local/cuda/bin/nvcc)

# deps [install-deps.sh args]: installs what is missing, unless EDGEATTN_NO_INSTALL is set
deps() {
    if [[ -n "${EDGEATTN_NO_INSTALL:-}" && "${EDGEATTN_NO_INSTALL}" != 0 ]]; then
        echo "install-deps: skipped (EDGEATTN_NO_INSTALL=$EDGEATTN_NO_INSTALL)"
        return 0
    fi
    tools/install-deps.sh "$@"
}

# find_nvcc: sets `nvcc` to the nvcc to use, or to "" (CUDA off); puts its folder first on PATH
find_nvcc() {
    nvcc=
    case "${EDGEATTN_NVCC:-}" in
    none | off | 0) return 0 ;;
    "") nvcc=$(command -v nvcc || true)
        [[ -n "$nvcc" || ! -x /usr/local/cuda/bin/nvcc ]] || nvcc=/usr/local/cuda/bin/nvcc ;;
    *) [[ -x "$EDGEATTN_NVCC" ]] || { echo "EDGEATTN_NVCC=$EDGEATTN_NVCC is not an executable" >&2; return 1; }
       nvcc=$EDGEATTN_NVCC ;;
    esac
    [[ -z "$nvcc" ]] || export PATH="$(dirname "$nvcc"):$PATH"
}

# setup DIR [meson args...]: configures a build folder, or reconfigures it when it exists and its
# arguments changed (they are always given in full, so a reconfigure never keeps a stale value; a
# changed meson.build is ninja's to notice, as always)
setup() {
    local dir=$1
    shift
    local args
    args=$(printf '%s\n' "$@")
    if [[ -f "$dir/build.ninja" && -f "$dir/setup-args.txt" && "$(cat "$dir/setup-args.txt")" == "$args" ]]; then
        echo "meson setup: $dir is configured with these options already"
        return 0
    fi
    if [[ -f "$dir/build.ninja" ]]; then
        meson setup --reconfigure "$dir" "$@" || return
    else
        meson setup "$dir" "$@" || return
    fi
    printf '%s\n' "$args" > "$dir/setup-args.txt"
}

# cuda_options: sets the array `cuda_opts` for the build folders. With nvcc, the fatbin is built once
# in $root/fatbin (a build folder that builds nothing else) and every other folder embeds that file
# (-Dnvcc_fatbin). ninja rebuilds it only when a kernel source or header nvcc read changes (its
# depfile), when -Dnvcc_archs or nvcc itself changes; otherwise this takes a second.
cuda_options() {
    find_nvcc
    if [[ -z "$nvcc" ]]; then
        if [[ -n "${EDGEATTN_NVCC:-}" ]]; then
            echo "CUDA backend: off (EDGEATTN_NVCC=$EDGEATTN_NVCC)"
        else
            echo "CUDA backend: off (no nvcc on PATH or in /usr/local/cuda/bin)"
        fi
        cuda_opts=(-Dcuda=disabled -Dnvcc_fatbin=)
        return 0
    fi
    local dir=$root/fatbin abs
    [[ "$dir" == /* ]] && abs=$dir || abs=$PWD/$dir
    mkdir -p "$root"
    echo "-- CUDA fatbin ($dir, nvcc $nvcc): built once, embedded by every build folder"
    setup "$dir" --buildtype=release -Dcuda=enabled -Dnvcc_fatbin= -Dopencl=disabled -Dsimd=false \
        -Dtests=false -Dedgebench=false > "$dir.setup.log" 2>&1 ||
        { cat "$dir.setup.log"; return 1; }
    ninja -C "$dir" cuda/ea_cuda_kernels.fatbin || return
    cuda_opts=(-Dcuda=enabled "-Dnvcc_fatbin=$abs/cuda/ea_cuda_kernels.fatbin")
}
