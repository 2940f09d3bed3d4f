#!/usr/bin/env python3
"""Writes a random-weight GGUF with the shape of gpt-oss-20b (architecture gpt-oss), for benchmarks.

    python3 tools/make_gptoss_model.py [--layers 24] [--out models/bench/...] [--seed 1]

Needs numpy and the `gguf` package. The output goes under models/ (git-ignored). Weights are random:
reason-bench feeds token ids and only speed and memory traffic matter.

Shape (gpt-oss-20b's published config.json): hidden 2880, 24 layers alternating sliding-window
(128) and full attention, 64 query heads / 8 KV heads of 64, q/k/v/o biases, one sink logit per
head, 32 experts of 2880 (top 4) with biases, clamped SwiGLU, vocabulary 201,088, untied output,
RoPE theta 150,000 with YaRN (factor 32 over 4,096). As released: the experts MXFP4, everything
else BF16 (norms, biases, sinks F32). About 13 GB; a decoded token reads about 3 GB (4 of 32
experts, attention, the output matrix).

Tensors are streamed to the file one by one (the whole model never sits in memory). MXFP4 blocks
are 17 bytes per 32 weights: an E8M0 scale byte (here 2^-7, so the E2M1 values, at most 6, keep
products near unit scale), then 16 bytes of random 4-bit values.
"""
import argparse
import os
import sys

import numpy as np
import gguf

N_EMBD = 2880
N_HEAD = 64
N_HEAD_KV = 8
HEAD_DIM = 64
N_EXPERT = 32
N_EXPERT_USED = 4
N_FF_EXP = 2880
N_VOCAB = 201088
WINDOW = 128
T = gguf.GGMLQuantizationType


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--out", default=None)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    n_layer = args.layers
    out = args.out or f"models/bench/gpt-oss-20b-shaped-random-mxfp4-{n_layer}l.gguf"
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    rng = np.random.default_rng(args.seed)

    w = gguf.GGUFWriter(out, "gpt-oss")
    a = "gpt-oss"
    w.add_name(f"gpt-oss-20b-shaped (random weights, MXFP4 experts, {n_layer} layers)")
    w.add_uint32(f"{a}.block_count", n_layer)
    w.add_uint32(f"{a}.context_length", 131072)
    w.add_uint32(f"{a}.embedding_length", N_EMBD)
    w.add_uint32(f"{a}.feed_forward_length", N_FF_EXP)
    w.add_uint32(f"{a}.attention.head_count", N_HEAD)
    w.add_uint32(f"{a}.attention.head_count_kv", N_HEAD_KV)
    w.add_uint32(f"{a}.attention.key_length", HEAD_DIM)
    w.add_uint32(f"{a}.attention.value_length", HEAD_DIM)
    w.add_float32(f"{a}.attention.layer_norm_rms_epsilon", 1e-5)
    w.add_uint32(f"{a}.attention.sliding_window", WINDOW)
    w.add_float32(f"{a}.rope.freq_base", 150000.0)
    w.add_string(f"{a}.rope.scaling.type", "yarn")
    w.add_float32(f"{a}.rope.scaling.factor", 32.0)
    w.add_uint32(f"{a}.rope.scaling.original_context_length", 4096)
    w.add_uint32(f"{a}.expert_count", N_EXPERT)
    w.add_uint32(f"{a}.expert_used_count", N_EXPERT_USED)
    w.add_uint32(f"{a}.expert_feed_forward_length", N_FF_EXP)
    w.add_string("tokenizer.ggml.model", "gpt2")
    w.add_string("tokenizer.ggml.pre", "gpt-4o")
    w.add_array("tokenizer.ggml.tokens", ["a", "b", "ab"] + [f"t{i}" for i in range(3, N_VOCAB)])
    w.add_array("tokenizer.ggml.merges", ["a b"])

    # (name, generator of the data, shape as numpy (outer..inner), dtype) in file order
    tensors = []

    def bf16(name, rows, cols, std=None):
        def make():
            s = (0.5 / np.sqrt(cols) if std is None else std) * np.sqrt(3.0)
            m = (rng.random((rows, cols), dtype=np.float32) * np.float32(2 * s) - np.float32(s))
            return (m.view(np.uint32) >> 16).astype(np.uint16)  # truncated to BF16
        tensors.append((name, make, (rows, cols), T.BF16, rows * cols * 2))

    def f32(name, arr_fn, n):
        tensors.append((name, lambda: np.ascontiguousarray(arr_fn(), dtype=np.float32), (n,),
                        T.F32, n * 4))

    def mxfp4(name, rows, cols):
        nb = cols // 32

        def make():
            out = np.empty((N_EXPERT, rows, nb * 17), dtype=np.uint8)
            for e in range(N_EXPERT):  # one expert at a time keeps memory small
                blk = rng.integers(0, 256, size=(rows, nb, 17), dtype=np.uint8)
                blk[:, :, 0] = 120  # scale 2^-7
                out[e] = blk.reshape(rows, nb * 17)
            return out
        tensors.append((name, make, (N_EXPERT, rows, nb * 17), T.MXFP4,
                        N_EXPERT * rows * nb * 17))

    bf16("token_embd.weight", N_VOCAB, N_EMBD, std=1.0)
    f32("output_norm.weight", lambda: np.ones(N_EMBD), N_EMBD)
    bf16("output.weight", N_VOCAB, N_EMBD)
    q_dim, kv_dim = N_HEAD * HEAD_DIM, N_HEAD_KV * HEAD_DIM
    for il in range(n_layer):
        p = f"blk.{il}."
        f32(p + "attn_norm.weight", lambda: np.ones(N_EMBD), N_EMBD)
        f32(p + "post_attention_norm.weight", lambda: np.ones(N_EMBD), N_EMBD)
        bf16(p + "attn_q.weight", q_dim, N_EMBD)
        bf16(p + "attn_k.weight", kv_dim, N_EMBD)
        bf16(p + "attn_v.weight", kv_dim, N_EMBD)
        bf16(p + "attn_output.weight", N_EMBD, q_dim)
        for b, n in (("attn_q.bias", q_dim), ("attn_k.bias", kv_dim), ("attn_v.bias", kv_dim),
                     ("attn_output.bias", N_EMBD)):
            f32(p + b, lambda n=n: 0.01 * rng.standard_normal(n), n)
        f32(p + "attn_sinks.weight", lambda: rng.standard_normal(N_HEAD), N_HEAD)
        bf16(p + "ffn_gate_inp.weight", N_EXPERT, N_EMBD)
        f32(p + "ffn_gate_inp.bias", lambda: 0.1 * rng.standard_normal(N_EXPERT), N_EXPERT)
        mxfp4(p + "ffn_gate_exps.weight", N_FF_EXP, N_EMBD)
        mxfp4(p + "ffn_up_exps.weight", N_FF_EXP, N_EMBD)
        mxfp4(p + "ffn_down_exps.weight", N_EMBD, N_FF_EXP)
        for b, n in (("ffn_gate_exps.bias", N_FF_EXP), ("ffn_up_exps.bias", N_FF_EXP),
                     ("ffn_down_exps.bias", N_EMBD)):
            tensors.append((p + b, lambda n=n: (0.01 * rng.standard_normal((N_EXPERT, n)))
                            .astype(np.float32), (N_EXPERT, n), T.F32, N_EXPERT * n * 4))

    for name, _, shape, dtype, nbytes in tensors:
        # quantized shapes are given in bytes (uint8), GGUFWriter converts them to elements
        np_dtype = {T.MXFP4: np.uint8, T.BF16: np.uint16, T.F32: np.float32}[dtype]
        w.add_tensor_info(name, shape, np.dtype(np_dtype), nbytes, raw_dtype=dtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for name, make, _, _, nbytes in tensors:
        data = make()
        assert data.nbytes == nbytes, (name, data.nbytes, nbytes)
        w.write_tensor_data(data)
    w.close()
    print(out, os.path.getsize(out) / 1e9, "GB", file=sys.stderr)


if __name__ == "__main__":
    main()
