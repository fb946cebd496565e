#!/usr/bin/env python3
"""GPU peers for edgeattn's CUDA and OpenCL figures: PyTorch's scaled_dot_product_attention through
each of its fused backends (FlashAttention-2 "flash", cuDNN "cudnn", memory-efficient "effic"), timed
with CUDA events on the shapes edgebench's GPU suites use, plus two ceilings of the same GPU (a
device-to-device copy and an FP16 GEMM). Run it in the same session as edgebench and quote ratios
(docs/PEERS-BENCH.md).

    python3 tools/peers/torch_sdpa.py [--quick] [--iters N] [--json FILE]

Needs PyTorch with CUDA (2.5 or newer for enable_gqa). Prints one table; --json also writes the rows.
"""
import argparse
import json
import math
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

BACKENDS = [("flash", SDPBackend.FLASH_ATTENTION),
            ("cudnn", SDPBackend.CUDNN_ATTENTION),
            ("effic", SDPBackend.EFFICIENT_ATTENTION)]

# (B, H, N, D) prefill shapes, each run full and causal; (B, Hq, Hkv, Nkv, D) decode shapes, one query
PREFILL = [(1, 32, 1024, 128), (1, 32, 4096, 128), (1, 32, 16384, 128), (4, 16, 2048, 64)]
DECODE = [(1, 32, 8, 4096, 128), (1, 32, 8, 32768, 128), (1, 32, 8, 131072, 128), (16, 32, 8, 4096, 128)]


def median_ms(fn, iters, warmup):
    """Median of `iters` timed calls (CUDA events around each), after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start = torch.cuda.Event(enable_timing=True)
        stop = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    times.sort()
    return times[len(times) // 2]


def ceilings(iters):
    rows = []
    n = 1 << 30  # 1 Gi FP16 elements: 2 GiB per buffer, far beyond any cache
    src = torch.empty(n, dtype=torch.float16, device="cuda")
    dst = torch.empty_like(src)
    ms = median_ms(lambda: dst.copy_(src), iters, 2)
    rows.append({"kind": "ceiling", "backend": "torch", "shape": "copy 2 GiB (read + write)",
                 "ms": ms, "rate": 2 * src.numel() * 2 / ms / 1e6, "unit": "GB/s"})
    del src, dst
    m = 8192
    a = torch.randn(m, m, dtype=torch.float16, device="cuda")
    b = torch.randn_like(a)
    ms = median_ms(lambda: a @ b, iters, 2)
    rows.append({"kind": "ceiling", "backend": "torch", "shape": f"fp16 gemm {m}^3",
                 "ms": ms, "rate": 2 * m ** 3 / ms / 1e9, "unit": "TFLOP/s"})
    return rows


def run_backends(kind, shape, fn, work, unit, iters):
    """Times fn under each SDPA backend; a backend that refuses the shape gets a row with its error."""
    rows = []
    for name, backend in BACKENDS:
        row = {"kind": kind, "backend": name, "shape": shape, "ms": math.nan, "rate": 0.0, "unit": unit}
        try:
            with sdpa_kernel(backend):
                row["ms"] = median_ms(fn, iters, 5)
            row["rate"] = work / row["ms"] / (1e9 if unit == "TFLOP/s" else 1e6)
        except Exception as err:  # noqa: BLE001 - any refusal becomes a row
            row["unit"] = "n/a: " + str(err).splitlines()[0][:48]
        rows.append(row)
    return rows


def prefill(b, h, n, d, causal, iters):
    q, k, v = (torch.randn(b, h, n, d, dtype=torch.float16, device="cuda") for _ in range(3))
    # 4*D FLOP per visible (query, key) pair; causal sees half of them
    flop = 4.0 * b * h * n * n * d / (2 if causal else 1)
    shape = f"B{b} H{h} N{n} D{d} {'causal' if causal else 'full'}"
    return run_backends("prefill", shape, lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal),
                        flop, "TFLOP/s", iters)


def decode(b, hq, hkv, n, d, iters):
    q = torch.randn(b, hq, 1, d, dtype=torch.float16, device="cuda")
    k = torch.randn(b, hkv, n, d, dtype=torch.float16, device="cuda")
    v = torch.randn_like(k)
    kv_bytes = 2.0 * b * hkv * n * d * 2  # K and V, FP16, each read once
    shape = f"B{b} Hq{hq} Hkv{hkv} N{n} D{d}"
    return run_backends("decode", shape, lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True),
                        kv_bytes, "GB/s", iters)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="first prefill and decode shape only, no ceilings")
    ap.add_argument("--iters", type=int, default=30, help="timed calls per row (median reported)")
    ap.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("torch_sdpa: no CUDA device", file=sys.stderr)
        return 1
    torch.manual_seed(1)
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")

    rows = [] if args.quick else ceilings(max(3, args.iters // 3))
    for shape in PREFILL[:1] if args.quick else PREFILL:
        for causal in (False, True):
            rows += prefill(*shape, causal, args.iters)
    for shape in DECODE[:1] if args.quick else DECODE:
        rows += decode(*shape, args.iters)

    print(f"{'kind':8} {'backend':7} {'shape':32} {'median ms':>10} {'rate':>9}")
    for r in rows:
        print(f"{r['kind']:8} {r['backend']:7} {r['shape']:32} {r['ms']:10.4f} {r['rate']:9.1f} {r['unit']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
