#!/usr/bin/env python3
"""Writes a random-weight GGUF with the shape of Qwen3.5-0.8B or -2B (architecture qwen35), for benchmarks.

    python3 tools/make_qwen35_model.py [--shape 0.8b|2b] [--type bf16|q8_0] [--out models/bench/...] [--seed 1]

Needs numpy and the `gguf` package (pip install gguf). The output goes under models/ (git-ignored);
nothing here is committed binary data. Weights are random, so the text is meaningless: reason-bench
feeds token ids and only the speed and the memory traffic matter.

Shape (Qwen/Qwen3.5-0.8B config.json, text_config, as quoted in several public configs read
through the search tool; see docs/performance.md): hidden 1024, 24 layers (every 4th full
attention: 6 attention + 18 Gated DeltaNet), 8 query heads / 2 KV heads of head_dim 256 (rot 64),
FFN 3584, DeltaNet 16 key heads and 16 value heads of 128 (conv kernel 4), vocabulary 248,320,
tied embeddings (no output.weight), rope theta 1e7, rms eps 1e-6. The multi-token-prediction layer
is left out (nextn_predict_layers 0).

--shape 2b: the same with hidden 2048 and FFN 6144 (Qwen3.5-2B's text model as remembered from its
published config, not re-checked here: no model hub is reachable) — about 1.9 B parameters.

Tensors and metadata follow docs/qwen35.md ("GGUF"): norms F32 holding 1 + w (here w = 0),
ssm_a = -exp(A_log) F32, ssm_dt.bias F32, ssm_conv1d F32 (C, kernel); matrices BF16 or Q8_0.
Random matrices are uniform with standard deviation 0.5 / sqrt(columns), so every product keeps
activations near unit scale and the 24 layers stay finite.

The tokenizer is a stand-in: gpt2-style, tokens "a", "b", "ab", then "t<id>", one merge (enough
to load).
"""
import argparse
import os
import sys

import numpy as np
import gguf

N_EMBD = 1024
N_LAYER = 24
N_HEAD = 8
N_HEAD_KV = 2
HEAD_DIM = 256
N_FF = 3584
N_VOCAB = 248320
N_K_HEAD = 16
N_V_HEAD = 16
D_K = 128
D_V = 128
KERNEL = 4
INTERVAL = 4


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--type", choices=["bf16", "q8_0"], default="bf16")
    ap.add_argument("--shape", choices=["0.8b", "2b"], default="0.8b")
    ap.add_argument("--out", default=None)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    global N_EMBD, N_FF
    if args.shape == "2b":
        N_EMBD, N_FF = 2048, 6144
    qtype = {"bf16": gguf.GGMLQuantizationType.BF16,
             "q8_0": gguf.GGMLQuantizationType.Q8_0}[args.type]
    out = args.out or f"models/bench/qwen35-{args.shape}-shaped-random-{args.type}.gguf"
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    rng = np.random.default_rng(args.seed)

    w = gguf.GGUFWriter(out, "qwen35")
    a = "qwen35"
    w.add_name(f"Qwen3.5-{args.shape.upper()}-shaped (random weights, {args.type.upper()})")
    w.add_uint32(f"{a}.block_count", N_LAYER)
    w.add_uint32(f"{a}.nextn_predict_layers", 0)
    w.add_uint32(f"{a}.context_length", 262144)
    w.add_uint32(f"{a}.embedding_length", N_EMBD)
    w.add_uint32(f"{a}.feed_forward_length", N_FF)
    w.add_uint32(f"{a}.attention.head_count", N_HEAD)
    w.add_uint32(f"{a}.attention.head_count_kv", N_HEAD_KV)
    w.add_uint32(f"{a}.attention.key_length", HEAD_DIM)
    w.add_uint32(f"{a}.attention.value_length", HEAD_DIM)
    w.add_float32(f"{a}.attention.layer_norm_rms_epsilon", 1e-6)
    w.add_float32(f"{a}.rope.freq_base", 1e7)
    w.add_uint32(f"{a}.rope.dimension_count", HEAD_DIM // 4)
    w.add_uint32(f"{a}.ssm.conv_kernel", KERNEL)
    w.add_uint32(f"{a}.ssm.state_size", D_K)
    w.add_uint32(f"{a}.ssm.group_count", N_K_HEAD)
    w.add_uint32(f"{a}.ssm.time_step_rank", N_V_HEAD)
    w.add_uint32(f"{a}.ssm.inner_size", N_V_HEAD * D_V)
    w.add_uint32(f"{a}.full_attention_interval", INTERVAL)
    w.add_string("tokenizer.ggml.model", "gpt2")
    w.add_string("tokenizer.ggml.pre", "qwen2")
    # gguf refuses an empty array: tokens 0..2 are "a", "b", "ab" with the one merge "a b"
    w.add_array("tokenizer.ggml.tokens", ["a", "b", "ab"] + [f"t{i}" for i in range(3, N_VOCAB)])
    w.add_array("tokenizer.ggml.merges", ["a b"])

    def matrix(name, rows, cols, std=None):
        s = (0.5 / np.sqrt(cols) if std is None else std) * np.sqrt(3.0)
        m = rng.random((rows, cols), dtype=np.float32)
        m = (m * np.float32(2 * s) - np.float32(s)).astype(np.float32)
        q = gguf.quants.quantize(m, qtype)
        w.add_tensor(name, q, raw_dtype=qtype)

    def f32(name, arr):
        w.add_tensor(name, np.ascontiguousarray(arr, dtype=np.float32))

    key_dim, value_dim = N_K_HEAD * D_K, N_V_HEAD * D_V
    conv_dim = 2 * key_dim + value_dim
    matrix("token_embd.weight", N_VOCAB, N_EMBD, std=1.0)
    f32("output_norm.weight", np.ones(N_EMBD))
    for il in range(N_LAYER):
        p = f"blk.{il}."
        f32(p + "attn_norm.weight", np.ones(N_EMBD))
        f32(p + "post_attention_norm.weight", np.ones(N_EMBD))
        if (il + 1) % INTERVAL == 0:  # gated full attention
            matrix(p + "attn_q.weight", 2 * N_HEAD * HEAD_DIM, N_EMBD)  # query + gate per head
            matrix(p + "attn_k.weight", N_HEAD_KV * HEAD_DIM, N_EMBD)
            matrix(p + "attn_v.weight", N_HEAD_KV * HEAD_DIM, N_EMBD)
            matrix(p + "attn_output.weight", N_EMBD, N_HEAD * HEAD_DIM)
            f32(p + "attn_q_norm.weight", np.ones(HEAD_DIM))
            f32(p + "attn_k_norm.weight", np.ones(HEAD_DIM))
        else:  # Gated DeltaNet
            matrix(p + "attn_qkv.weight", conv_dim, N_EMBD)
            matrix(p + "attn_gate.weight", value_dim, N_EMBD)
            matrix(p + "ssm_beta.weight", N_V_HEAD, N_EMBD)
            matrix(p + "ssm_alpha.weight", N_V_HEAD, N_EMBD)
            conv = (rng.random((conv_dim, KERNEL), dtype=np.float32) - 0.5)
            f32(p + "ssm_conv1d.weight", conv)
            f32(p + "ssm_dt.bias", rng.random(N_V_HEAD, dtype=np.float32) - 0.5)
            a_log = np.log(rng.uniform(1.0, 16.0, N_V_HEAD))
            f32(p + "ssm_a", -np.exp(a_log))
            f32(p + "ssm_norm.weight", np.ones(D_V))
            matrix(p + "ssm_out.weight", N_EMBD, value_dim)
        matrix(p + "ffn_gate.weight", N_FF, N_EMBD)
        matrix(p + "ffn_up.weight", N_FF, N_EMBD)
        matrix(p + "ffn_down.weight", N_EMBD, N_FF)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(out, os.path.getsize(out) / 1e6, "MB", file=sys.stderr)


if __name__ == "__main__":
    main()
