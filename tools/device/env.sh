# Source on the GPU machine, from the repository root, after tools/device/prepare.sh filled
# .device-carry/ here and the folder was carried along (docs/GPU-MACHINE.md):
#
#   source .device-carry/env.sh
#
# Lets pkg-config, Meson and the dynamic loader find the carried cmocka and CLBlast, puts nvcc on
# PATH, and registers NVIDIA's OpenCL driver with the ICD loader (the driver is installed there but
# has no vendors entry, so without it only other platforms are listed).

ea_carry_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# the copy in .device-carry/ sits beside root/; the one in tools/device/ finds the carried folder
[[ -d $ea_carry_dir/root ]] || ea_carry_dir=$(cd "$ea_carry_dir/../.." && pwd)/.device-carry
ea_multiarch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
ea_carry_lib=$ea_carry_dir/root/usr/lib/$ea_multiarch

if [[ -d $ea_carry_lib ]]; then
    export PKG_CONFIG_PATH=$ea_carry_lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
    export LD_LIBRARY_PATH=$ea_carry_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
else
    echo "env.sh: $ea_carry_lib not found: run tools/device/prepare.sh and carry .device-carry" >&2
fi

# (only where NVIDIA's driver is installed, so sourcing this elsewhere changes nothing)
if { command -v nvidia-smi > /dev/null || ldconfig -p 2> /dev/null | grep -q 'libnvidia-opencl\.so\.1'; } &&
    ! ls /etc/OpenCL/vendors/*nvidia*.icd > /dev/null 2>&1; then
    if mkdir -p /etc/OpenCL/vendors 2> /dev/null &&
        echo libnvidia-opencl.so.1 > /etc/OpenCL/vendors/nvidia.icd 2> /dev/null; then
        :
    else
        # not root: a private vendors folder (the ICD loader then lists only this platform)
        mkdir -p "$ea_carry_dir/vendors"
        echo libnvidia-opencl.so.1 > "$ea_carry_dir/vendors/nvidia.icd"
        export OCL_ICD_VENDORS=$ea_carry_dir/vendors
    fi
fi

export PATH=/usr/local/cuda/bin:$PATH
unset ea_carry_dir ea_multiarch ea_carry_lib
