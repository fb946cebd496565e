#!/usr/bin/env bash
# Fills .device-carry/ at the repository root with what a GPU machine without a package registry
# lacks for edgeattn's suites: cmocka (tests) and CLBlast (the OpenCL backend's unfused path), taken
# from this machine's Debian/Ubuntu archive and unpacked, plus env.sh to source over there.
# docs/GPU-MACHINE.md explains the whole route.
#
#   apt-get update && tools/device/prepare.sh     # once; about 18 MB, ignored by git (.gitignore)
#
# Then carry .device-carry with the checkout and start each remote command with
#   source .device-carry/env.sh;
# The GPU machine must have the same architecture as this one (x86-64 for the H100/H200 hosts).
set -euo pipefail

repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
carry=$repo/.device-carry
packages=(libcmocka0 libcmocka-dev libclblast1 libclblast-dev)
multiarch=$(gcc -print-multiarch 2>/dev/null || dpkg-architecture -qDEB_HOST_MULTIARCH)

rm -rf "$carry"
mkdir -p "$carry/debs" "$carry/root"
if ! (cd "$carry/debs" && apt-get download "${packages[@]}" > "$carry/debs/download.log" 2>&1); then
    cat "$carry/debs/download.log" >&2
    echo "prepare: apt-get download failed (run 'apt-get update' first?)" >&2
    exit 1
fi
for deb in "$carry"/debs/*.deb; do
    dpkg-deb -x "$deb" "$carry/root"
done
rm -rf "$carry/debs"

# The packages' .pc files name /usr. Make them relative to their own location (pkg-config sets
# ${pcfiledir}), so the folder works wherever the checkout lands on the other machine.
pcdir=$carry/root/usr/lib/$multiarch/pkgconfig
for pc in "$pcdir"/*.pc; do
    if grep -q '^prefix=' "$pc"; then
        sed -i 's|^prefix=.*|prefix=${pcfiledir}/../../..|' "$pc"
    else
        sed -i '1i prefix=${pcfiledir}/../../..' "$pc"
    fi
    # absolute flags (Debian's cmocka.pc has -L/usr/lib/... and -I/usr/include)
    sed -i -e 's|-L/usr/|-L${prefix}/|g' -e 's|-I/usr/|-I${prefix}/|g' "$pc"
done
for name in cmocka clblast; do
    [[ -f $pcdir/$name.pc ]] || { echo "prepare: $name.pc missing from the unpacked packages" >&2; exit 1; }
done

cp "$repo/tools/device/env.sh" "$carry/env.sh"
echo "prepare: $(du -sh "$carry" | cut -f1) in $carry ($multiarch): ${packages[*]}"
