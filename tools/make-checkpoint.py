#!/usr/bin/env python3
"""Writes a Llama-style checkpoint with random weights in the llama2.c format, for
examples/llama_decode.c and its tests. Nothing is downloaded; only the standard library is used,
so the same seed gives the same file everywhere.

    python3 tools/make-checkpoint.py model.bin                      # dim 512, 8 layers, GQA 8/2, D 64
    python3 tools/make-checkpoint.py tiny.bin --dim 64 --hidden 172 --layers 4 --heads 4 --kv-heads 2 \\
        --vocab 256 --seq-len 512 --seed 7

Format: seven little-endian int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
seq_len; vocab_size negative when the classifier has its own weights, --unshared), then FP32 arrays:
token embedding [vocab][dim], attention RMSNorm [layers][dim], wq [layers][dim][dim], wk and wv
[layers][kv_dim][dim], wo [layers][dim][dim], FFN RMSNorm [layers][dim], w1 [layers][hidden][dim],
w2 [layers][dim][hidden], w3 [layers][hidden][dim], final RMSNorm [dim], the RoPE tables of older
readers (cos and sin of pos * 10000^(-2p/head_dim), [seq_len][head_dim/2] each), and the classifier
[vocab][dim] with --unshared.

Weights: every matrix is uniform with standard deviation 1/sqrt(its input width) (so a projection
of a unit-RMS vector stays near unit RMS, scores and logits stay near 1 and softmaxes are neither
flat nor one-hot); the embedding, read as the classifier when shared, is scaled by its width like
the classifier; RMSNorm weights are 1.
"""
import argparse
import math
import random
import struct
import sys
from array import array

CHUNK = 1 << 20


def write_floats(f, values):
    a = array("f", values)
    if sys.byteorder != "little":
        a.byteswap()
    a.tofile(f)


def write_random(f, rng, n, fan_in):
    """n uniform values of standard deviation 1/sqrt(fan_in), in chunks."""
    half_width = math.sqrt(3.0 / fan_in)  # uniform(-w, w) has variance w^2 / 3
    r = rng.random
    left = n
    while left > 0:
        m = min(left, CHUNK)
        write_floats(f, [(2.0 * r() - 1.0) * half_width for _ in range(m)])
        left -= m


def main():
    ap = argparse.ArgumentParser(description="random-weight Llama checkpoint in the llama2.c format")
    ap.add_argument("output")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--hidden", type=int, default=1376, help="feed-forward width")
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=512)
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--unshared", action="store_true", help="a classifier of its own (negative vocab_size)")
    a = ap.parse_args()

    if min(a.dim, a.hidden, a.layers, a.heads, a.kv_heads, a.vocab, a.seq_len) <= 0:
        ap.error("every dimension must be positive")
    if a.dim % a.heads or a.heads % a.kv_heads:
        ap.error("dim must be a multiple of heads, and heads of kv-heads")
    hd = a.dim // a.heads
    if hd % 2:
        ap.error("head dim %d must be even (RoPE rotates pairs)" % hd)
    kv_dim = a.kv_heads * hd
    L = a.layers
    rng = random.Random(a.seed)

    with open(a.output, "wb") as f:
        vocab_field = -a.vocab if a.unshared else a.vocab
        f.write(struct.pack("<7i", a.dim, a.hidden, L, a.heads, a.kv_heads, vocab_field, a.seq_len))
        write_random(f, rng, a.vocab * a.dim, a.dim)           # token embedding
        write_floats(f, [1.0] * (L * a.dim))                   # attention RMSNorm
        write_random(f, rng, L * a.dim * a.dim, a.dim)         # wq
        write_random(f, rng, L * kv_dim * a.dim, a.dim)        # wk
        write_random(f, rng, L * kv_dim * a.dim, a.dim)        # wv
        write_random(f, rng, L * a.dim * a.dim, a.dim)         # wo
        write_floats(f, [1.0] * (L * a.dim))                   # FFN RMSNorm
        write_random(f, rng, L * a.hidden * a.dim, a.dim)      # w1
        write_random(f, rng, L * a.dim * a.hidden, a.hidden)   # w2
        write_random(f, rng, L * a.hidden * a.dim, a.dim)      # w3
        write_floats(f, [1.0] * a.dim)                         # final RMSNorm
        freqs = [10000.0 ** (-2.0 * p / hd) for p in range(hd // 2)]
        write_floats(f, [math.cos(pos * fr) for pos in range(a.seq_len) for fr in freqs])
        write_floats(f, [math.sin(pos * fr) for pos in range(a.seq_len) for fr in freqs])
        if a.unshared:
            write_random(f, rng, a.vocab * a.dim, a.dim)       # classifier
        size = f.tell()
    print("%s: dim %d, hidden %d, %d layers, %d/%d heads of %d, vocab %d%s, seq_len %d, seed %d: %d bytes"
          % (a.output, a.dim, a.hidden, L, a.heads, a.kv_heads, hd, a.vocab,
             " (own classifier)" if a.unshared else "", a.seq_len, a.seed, size))


if __name__ == "__main__":
    main()
