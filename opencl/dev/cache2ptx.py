#!/usr/bin/env python3
"""Writes each entry of an edgeattn OpenCL program-binary cache (kernel_cache_dir) as a file of its own.

    cache2ptx.py CACHE_DIR OUT_DIR

On NVIDIA's OpenCL the binary is PTX text: it lands in OUT_DIR/<kernel>-d<DMAX>[-paged].ptx (utility.ptx for the utility program), ready for
`ptxas -arch=sm_90 -v`; other drivers' binaries land in <entry>.bin. The entry layout is the one
opencl/ocl_backend.c writes: magic "EAOCLBIN", u32 version, u32 key length, u64 binary length,
u64 hash, the key, the binary."""
import os
import re
import struct
import sys


def main():
    src, dst = sys.argv[1], sys.argv[2]
    os.makedirs(dst, exist_ok=True)
    for name in sorted(os.listdir(src)):
        with open(os.path.join(src, name), "rb") as f:
            data = f.read()
        if len(data) < 32 or data[:8] != b"EAOCLBIN":
            continue
        _, klen, blen, _ = struct.unpack_from("<IIQQ", data, 8)
        key = data[32:32 + klen].decode("utf-8", "replace")
        blob = data[32 + klen:32 + klen + blen]
        text = blob.rstrip(b"\0")
        is_ptx = b".version" in text[:4096] and b".target" in text[:4096]
        base = os.path.splitext(name)[0]
        m = re.search(r"-DEA_DMAX=(\d+)", key)
        k = re.search(r"(ea_flash_\w+)", text.decode("utf-8", "replace")) if m else None
        paged = "-paged" if "-DEA_PAGED" in key else ""
        base = (f"{k.group(1) if k else 'flash'}-d{m.group(1)}{paged}" if m
                else ("utility" if "ea_combine" in text.decode("utf-8", "replace") else base))
        out = os.path.join(dst, base + (".ptx" if is_ptx else ".bin"))
        with open(out, "wb") as f:
            f.write(text if is_ptx else blob)
        kernels = [l.split("(")[0].split()[-1] for l in text.decode("utf-8", "replace").splitlines()
                   if l.startswith(".entry") or " .entry " in l] if is_ptx else []
        print(f"{os.path.basename(out)}: {len(blob)} bytes; kernels {' '.join(kernels) or '?'}; key {key[:160]}")


if __name__ == "__main__":
    main()
