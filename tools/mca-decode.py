#!/usr/bin/env python3
"""Predicted cycles of the NEON decode inner loops on Arm cores, from llvm-mca (no board needed).

    tools/mca-decode.py [--cpu cortex-a78 --cpu cortex-a55 ...]

Compiles the aarch64 decode kernels with the cross compiler (aarch64-linux-gnu-gcc -O3, the flags
cpu_simd/arm/meson.build gives them), finds in each kernel function the hottest inner loop (the
backward branch enclosing the most FMLA/FMLAL), hands its instructions to llvm-mca for each core and
prints cycles per iteration and per byte of K or V that the iteration reads. The loops are the ones a
grouped-query decode of 4 query heads per KV head runs (4 rows): QK reads 4 keys x 8 dims per
iteration, P.V 4 keys x 16 dims, so 64 bytes of F16 K or V, 128 of F32. The x86 figures to set beside
them come from edgebench (decode rate at a cache-resident length, e.g. case C).
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CC = "aarch64-linux-gnu-gcc"
OBJDUMP = "aarch64-linux-gnu-objdump"
BASE = ["-O3", "-std=c11", "-I" + ROOT, "-I" + os.path.join(ROOT, "include"), "-DEA_HAVE_ARM_SIMD"]
FP16 = ["-march=armv8.2-a+fp16+fp16fml", "-DEA_HAVE_FP16FML"]
# (source, extra flags, function, bytes of K/V read per loop iteration, what)
KERNELS = [
    ("cpu_simd/arm/qk-rows-neon-4x4.c", [], "ea_qk_rows_f16_neon_4x4", 64, "QK, F16 K, NEON"),
    ("cpu_simd/arm/qk-rows-neon-4x4.c", [], "ea_qk_rows_f32_neon_4x4", 128, "QK, F32 K, NEON"),
    ("cpu_simd/arm/qk-rows-f16-neonfp16-fmlal-4x4.c", FP16, "ea_qk_rows_f16_neonfp16_fmlal_4x4", 64,
     "QK, F16 K, NEON-FP16 (FMLAL)"),
    ("cpu_simd/arm/pv-rows-neon-8x8.c", [], "ea_pv_rows_f16_neon_8x8", 128, "P.V, F16 V, NEON"),
    ("cpu_simd/arm/pv-rows-neon-8x8.c", [], "ea_pv_rows_f32_neon_8x8", 256, "P.V, F32 V, NEON"),
]


def disasm(obj):
    out = subprocess.run([OBJDUMP, "-d", "--no-show-raw-insn", obj], capture_output=True, text=True,
                         check=True).stdout
    funcs, fn = {}, None
    for line in out.splitlines():
        m = re.match(r"^[0-9a-f]+ <(.+)>:", line)
        if m:
            fn = m.group(1)
            funcs[fn] = []
            continue
        m = re.match(r"\s*([0-9a-f]+):\s+(\S+)\s*(.*)", line)
        if m and fn:
            funcs[fn].append((int(m.group(1), 16), m.group(2), m.group(3).split("//")[0].strip()))
    return funcs


def hottest_loop(insns):
    """Of the innermost loops (a backward branch whose body holds no other branch), the one with the
    most FMLA/FMLAL."""
    loops = []
    for addr, op, arg in insns:
        if not (op.startswith("b.") or op in ("cbnz", "cbz", "tbnz", "tbz", "b")):
            continue
        m = re.search(r"\b([0-9a-f]+) <", arg)
        if m and int(m.group(1), 16) < addr:
            loops.append((int(m.group(1), 16), addr))
    best = None
    for lo, hi in loops:
        body = [(a, o, g) for a, o, g in insns if lo <= a < hi]
        if any(o.startswith("b") and o not in ("bic", "bif", "bit", "bsl", "bfi", "bfxil", "bfm")
               for _, o, _ in body):
            continue  # holds another branch: not innermost
        n = sum(1 for _, o, _ in body if o.startswith("fmla") or o.startswith("fmlal"))
        if n and (best is None or n > best[0]):
            best = (n, body)
    return best


def mca(body, cpu):
    """Cycles per iteration and the name of the scheduling model's first resource (llvm-mca 14 models
    some cores, Cortex-A78 and Neoverse N1 among them, with the Cortex-A57 machine model)."""
    text = "\n".join(f"{o} {g}".strip() for _, o, g in body) + "\n"
    r = subprocess.run(["llvm-mca", "-mtriple=aarch64", f"-mcpu={cpu}", "-iterations=200", "-resource-pressure"],
                       input=text, capture_output=True, text=True)
    if r.returncode != 0:
        return None, r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "llvm-mca failed"
    m = re.search(r"Total Cycles:\s+(\d+)", r.stdout)
    model = re.search(r"\[\d+(?:\.\d+)?\]\s+-\s+([A-Za-z0-9]+?)Unit", r.stdout)
    return (int(m.group(1)) / 200.0 if m else None), (model.group(1) if model else "?")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu", action="append", help="llvm-mca -mcpu (default cortex-a78 and cortex-a55)")
    args = ap.parse_args()
    cpus = args.cpu or ["cortex-a78", "cortex-a55"]
    print(f"{'kernel':34} {'insns':>5} {'fma':>4} {'vmov':>4}" + "".join(f" {c + ' cyc/it':>18} {'cyc/B':>6}" for c in cpus))
    models = {}
    with tempfile.TemporaryDirectory() as tmp:
        for src, flags, fn, nbytes, what in KERNELS:
            obj = os.path.join(tmp, os.path.basename(src) + ".o")
            subprocess.run([CC] + BASE + flags + ["-c", os.path.join(ROOT, src), "-o", obj], check=True)
            loop = hottest_loop(disasm(obj).get(fn, []))
            if not loop:
                print(f"{what:34} no FMA loop found in {fn}")
                continue
            n, body = loop
            movs = sum(1 for _, o, g in body if o == "mov" and g.startswith("v"))
            row = f"{what:34} {len(body):5d} {n:4d} {movs:4d}"
            for cpu in cpus:
                cyc, info = mca(body, cpu)
                models[cpu] = info
                row += f" {cyc:18.1f} {cyc / nbytes:6.3f}" if cyc else f" {'(' + str(info)[:16] + ')':>18} {'-':>6}"
            print(row)
    print("insns, fma, vmov: instructions, FMLA/FMLAL and vector register moves in the loop; scheduling models: " +
          ", ".join(f"{c} -> {m}" for c, m in models.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
