#!/usr/bin/env python3
"""Writes a dense benchmark model: a real model's shape with random weights, as one GGUF file.

Usage: python3 tools/make_bench_model.py --shape qwen2.5-0.5b --type q4_k_m [--out FILE]
       (default out: models/bench/<shape>-shaped-random-<type>.gguf; never committed)

Shapes (from the models' public config.json files):
  qwen3-0.6b    qwen3: hidden 1024, 28 layers, 16 query / 8 KV heads of 128, FFN 3072, q/k norms
  qwen2.5-0.5b  qwen2: hidden 896, 24 layers, 14 / 2 heads of 64, FFN 4864, q/k/v biases
  qwen2.5-1.5b  qwen2: hidden 1536, 28 layers, 12 / 2 heads of 128, FFN 8960, q/k/v biases
all with vocabulary 151,936 and tied embeddings (token_embd is also the output matrix).

Types: f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k, mxfp4 (every matrix in that
type) and q4_k_m, llama.cpp's mix: Q4_K, with Q6_K for the embedding/output matrix and for
attn_v and ffn_down in the first and last eighth of the layers and every third layer between.
A K type needs rows that are a multiple of 256 values; where they are not (hidden 896), the
matrix falls back as llama.cpp's quantizer does: Q4_K to Q5_0, Q6_K to Q8_0.

Weights: random blocks (gguf.quants cannot quantize the K types) whose scale fields give a
standard deviation of about 0.5 / sqrt(columns), the embedding about 1; norms are ones, biases
small. The tokenizer is a gpt2-style stand-in ("a", "b", "ab", then "t<id>"): reason-bench and
llama-bench feed token ids.
"""
import argparse
import os

import numpy as np

import gguf
from gguf import GGMLQuantizationType as QT

SHAPES = {
    "qwen3-0.6b": dict(arch="qwen3", n_embd=1024, n_layer=28, n_head=16, n_head_kv=8,
                       head_dim=128, n_ff=3072, n_vocab=151936, qk_norm=True, bias=False),
    "qwen2.5-0.5b": dict(arch="qwen2", n_embd=896, n_layer=24, n_head=14, n_head_kv=2,
                         head_dim=64, n_ff=4864, n_vocab=151936, qk_norm=False, bias=True),
    "qwen2.5-1.5b": dict(arch="qwen2", n_embd=1536, n_layer=28, n_head=12, n_head_kv=2,
                         head_dim=128, n_ff=8960, n_vocab=151936, qk_norm=False, bias=True),
}

# rms of the random integer part of each type's weights for uniform random codes (scale 1):
# q-8 of Q4_0 4.6, q-16 of Q5_0 9.2, int8 73.9, q-32 of Q6_K 18.5 times int8 scales 73.9; the
# K types d*sc*q - dmin*m with 6-bit sc, m and dmin centring the mean: Q4_K ~263 (dmin = 7.5 d),
# Q5_K ~521 (dmin = 15.5 d); MXFP4 doubled E2M1 values 5.85.
RMS = {QT.Q4_0: 4.6, QT.Q4_1: 4.6, QT.Q5_0: 9.2, QT.Q5_1: 9.2, QT.Q8_0: 73.9,
       QT.Q6_K: 18.5 * 73.9, QT.Q4_K: 263.0, QT.Q5_K: 521.0, QT.MXFP4: 5.85}
CENTRE = {QT.Q4_1: 7.5, QT.Q5_1: 15.5, QT.Q4_K: 7.5, QT.Q5_K: 15.5}  # -min / d for the min types


def random_blocks(rng, qtype, rows, cols, std):
    """rows x cols of random blocks of qtype whose weights have about this standard deviation."""
    if qtype in (QT.F16, QT.BF16):
        v = (rng.standard_normal((rows, cols)) * std).astype(np.float32)
        if qtype == QT.F16:
            return v.astype(np.float16).view(np.uint8)
        return (v.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8)
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    nb = rows * (cols // block)
    b = rng.integers(0, 256, size=(nb, size), dtype=np.uint8)

    def f16(col, v):
        b[:, col:col + 2] = np.full(nb, v, dtype=np.float16).view(np.uint8).reshape(nb, 2)

    d = std / RMS[qtype]
    if qtype == QT.MXFP4:
        b[:, 0] = 128 + int(round(np.log2(d)))
    elif qtype == QT.Q6_K:
        f16(208, d)
    else:
        f16(0, d)
        if qtype in CENTRE:
            f16(2, (-1 if qtype in (QT.Q4_1, QT.Q5_1) else 1) * CENTRE[qtype] * d)
    return b.reshape(rows, cols // block * size)


def fallback(qtype, cols):
    """llama.cpp's fallback for K types whose rows are not whole super-blocks."""
    if cols % 256 == 0 or qtype not in (QT.Q4_K, QT.Q5_K, QT.Q6_K):
        return qtype
    return {QT.Q4_K: QT.Q5_0, QT.Q5_K: QT.Q5_1, QT.Q6_K: QT.Q8_0}[qtype]


def tensor_type(mix, name, layer, n_layer):
    """The type of one matrix under the chosen type (a single type or q4_k_m)."""
    if mix != "q4_k_m":
        return QT[mix.upper()]
    if name == "token_embd":
        return QT.Q6_K
    if name in ("attn_v", "ffn_down"):
        more_bits = layer < n_layer // 8 or layer >= 7 * n_layer // 8 or \
            (layer - n_layer // 8) % 3 == 2
        return QT.Q6_K if more_bits else QT.Q4_K
    return QT.Q4_K


def write_model(path, shape_name, mix):
    h = SHAPES[shape_name]
    rng = np.random.default_rng(7)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    a = h["arch"]
    w = gguf.GGUFWriter(path, a)
    w.add_name(f"{shape_name}-shaped (random weights, {mix})")
    w.add_uint32(f"{a}.block_count", h["n_layer"])
    w.add_uint32(f"{a}.context_length", 32768)
    w.add_uint32(f"{a}.embedding_length", h["n_embd"])
    w.add_uint32(f"{a}.feed_forward_length", h["n_ff"])
    w.add_uint32(f"{a}.attention.head_count", h["n_head"])
    w.add_uint32(f"{a}.attention.head_count_kv", h["n_head_kv"])
    w.add_uint32(f"{a}.attention.key_length", h["head_dim"])
    w.add_uint32(f"{a}.attention.value_length", h["head_dim"])
    w.add_float32(f"{a}.attention.layer_norm_rms_epsilon", 1e-6)
    w.add_float32(f"{a}.rope.freq_base", 1e6)
    w.add_string("tokenizer.ggml.model", "gpt2")
    w.add_string("tokenizer.ggml.pre", "qwen2")
    w.add_array("tokenizer.ggml.tokens", ["a", "b", "ab"] + [f"t{i}" for i in range(3, h["n_vocab"])])
    w.add_array("tokenizer.ggml.merges", ["a b"])
    counts = {}

    def matrix(name, base, layer, rows, cols, std=None):
        qtype = fallback(tensor_type(mix, base, layer, h["n_layer"]), cols)
        counts[qtype.name] = counts.get(qtype.name, 0) + 1
        std = 0.5 / np.sqrt(cols) if std is None else std
        w.add_tensor(name, random_blocks(rng, qtype, rows, cols, std), raw_dtype=qtype)

    def vector(name, n, value=None):
        v = np.full(n, 1.0, np.float32) if value is None else \
            (rng.standard_normal(n) * value).astype(np.float32)
        w.add_tensor(name, v)

    e, q, kv = h["n_embd"], h["n_head"] * h["head_dim"], h["n_head_kv"] * h["head_dim"]
    matrix("token_embd.weight", "token_embd", 0, h["n_vocab"], e, std=1.0)
    vector("output_norm.weight", e)
    for il in range(h["n_layer"]):
        p = f"blk.{il}."
        vector(p + "attn_norm.weight", e)
        for nm, rows in (("attn_q", q), ("attn_k", kv), ("attn_v", kv)):
            matrix(p + nm + ".weight", nm, il, rows, e)
            if h["bias"]:
                vector(p + nm + ".bias", rows, 0.02)
        if h["qk_norm"]:
            vector(p + "attn_q_norm.weight", h["head_dim"])
            vector(p + "attn_k_norm.weight", h["head_dim"])
        matrix(p + "attn_output.weight", "attn_output", il, e, q)
        vector(p + "ffn_norm.weight", e)
        matrix(p + "ffn_gate.weight", "ffn_gate", il, h["n_ff"], e)
        matrix(p + "ffn_up.weight", "ffn_up", il, h["n_ff"], e)
        matrix(p + "ffn_down.weight", "ffn_down", il, e, h["n_ff"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"{path}: {os.path.getsize(path) / 1e6:.1f} MB, matrices by type {counts}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", default="qwen3-0.6b", choices=sorted(SHAPES))
    ap.add_argument("--type", required=True,
                    choices=["f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k", "q5_k",
                             "q6_k", "mxfp4", "q4_k_m"])
    ap.add_argument("--out")
    args = ap.parse_args()
    write_model(args.out or f"models/bench/{args.shape}-shaped-random-{args.type}.gguf", args.shape,
                args.type)


if __name__ == "__main__":
    main()
