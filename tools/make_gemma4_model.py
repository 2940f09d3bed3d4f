#!/usr/bin/env python3
"""Writes a random-weight Hugging Face directory with the shape of Gemma 4 E2B's text model, for
benchmarks (architecture gemma4; libreason reads Gemma 4 from safetensors directories).

    python3 tools/make_gemma4_model.py [--out models/bench/gemma4-e2b-shaped-random-bf16] [--seed 1]

Needs numpy only. The output goes under models/ (git-ignored). Weights are random BF16: reason-bench
feeds token ids and only speed and memory traffic matter; no tokenizer is written, so the script
also writes a stand-in tokenizer.json (one token per id, no merges).

Shape (Gemma 4 E2B as described in public model cards — not re-checked against its config.json,
which is not reachable from here): hidden 1536, 35 layers in a 4 local : 1 global pattern (the last
global), 8 query heads and 1 KV head, head_dim 256 local / 512 global (global K reused as V),
sliding window 512, FFN 6144 (the real model doubles it on its KV-sharing layers; here it does not),
the last 20 layers sharing K/V, per-layer embeddings of 256 per layer, vocabulary 262,144, tied
embeddings, logit soft-cap 30. About 4.2 B parameters (8.4 GB), most of them in the per-layer
embedding table that a token reads one row of.

The safetensors file is written tensor by tensor (header first, sizes known), so the model never
sits in memory.
"""
import argparse
import json
import os
import sys

import numpy as np

HIDDEN, LAYERS, HEADS, KV_HEADS, HEAD_DIM, GLOBAL_HEAD_DIM = 1536, 35, 8, 1, 256, 512
FFN, WINDOW, SHARED, PLE, VOCAB = 6144, 512, 20, 256, 262144


def layer_types():
    t = ["full_attention" if (i + 1) % 5 == 0 else "sliding_attention" for i in range(LAYERS)]
    t[-1] = "full_attention"
    return t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="models/bench/gemma4-e2b-shaped-random-bf16")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    types = layer_types()
    first_shared = LAYERS - SHARED

    tensors = []  # (name, shape, kind): kind "mat" (random), "ones", "scalar"

    def mat(name, rows, cols):
        tensors.append((name, (rows, cols), "mat"))

    def ones(name, n):
        tensors.append((name, (n,), "ones"))

    mat("model.embed_tokens.weight", VOCAB, HIDDEN)
    mat("model.embed_tokens_per_layer.weight", VOCAB, LAYERS * PLE)
    mat("model.per_layer_model_projection.weight", LAYERS * PLE, HIDDEN)
    ones("model.per_layer_projection_norm.weight", PLE)
    ones("model.norm.weight", HIDDEN)
    for il in range(LAYERS):
        p = f"model.layers.{il}."
        glob = types[il] == "full_attention"
        hd = GLOBAL_HEAD_DIM if glob else HEAD_DIM
        for n in ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                  "post_feedforward_layernorm", "post_per_layer_input_norm"):
            ones(p + n + ".weight", HIDDEN)
        tensors.append((p + "layer_scalar", (1,), "ones"))
        mat(p + "self_attn.q_proj.weight", HEADS * hd, HIDDEN)
        ones(p + "self_attn.q_norm.weight", hd)
        if il < first_shared:
            mat(p + "self_attn.k_proj.weight", KV_HEADS * hd, HIDDEN)
            if not glob:
                mat(p + "self_attn.v_proj.weight", KV_HEADS * hd, HIDDEN)
            ones(p + "self_attn.k_norm.weight", hd)
        mat(p + "self_attn.o_proj.weight", HIDDEN, HEADS * hd)
        mat(p + "mlp.gate_proj.weight", FFN, HIDDEN)
        mat(p + "mlp.up_proj.weight", FFN, HIDDEN)
        mat(p + "mlp.down_proj.weight", HIDDEN, FFN)
        mat(p + "per_layer_input_gate.weight", PLE, HIDDEN)
        mat(p + "per_layer_projection.weight", HIDDEN, PLE)

    header, offset = {}, 0
    for name, shape, _ in tensors:
        n = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    hjson = json.dumps(header, separators=(",", ":")).encode()
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    with open(os.path.join(args.out, "model.safetensors"), "wb") as f:
        f.write(len(hjson).to_bytes(8, "little"))
        f.write(hjson)
        one = np.array([1.0], dtype=np.float32).view(np.uint32) >> 16
        for name, shape, kind in tensors:
            if kind == "ones":
                f.write(np.full(shape, one[0], dtype=np.uint16).tobytes())
                continue
            rows, cols = shape
            s = (0.5 / np.sqrt(cols)) * np.sqrt(3.0)
            for r0 in range(0, rows, 8192):  # a slab at a time
                r1 = min(rows, r0 + 8192)
                m = rng.random((r1 - r0, cols), dtype=np.float32) * np.float32(2 * s) - np.float32(s)
                f.write((m.view(np.uint32) >> 16).astype(np.uint16).tobytes())

    config = {
        "architectures": ["Gemma4ForCausalLM"], "model_type": "gemma4_text",
        "vocab_size": VOCAB, "hidden_size": HIDDEN, "intermediate_size": FFN,
        "num_hidden_layers": LAYERS, "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS,
        "head_dim": HEAD_DIM, "hidden_activation": "gelu_pytorch_tanh",
        "max_position_embeddings": 131072, "rms_norm_eps": 1e-6, "tie_word_embeddings": True,
        "rope_parameters": {"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                            "full_attention": {"rope_type": "proportional",
                                               "partial_rotary_factor": 0.25,
                                               "rope_theta": 1000000.0}},
        "sliding_window": WINDOW, "layer_types": types, "final_logit_softcapping": 30.0,
        "vocab_size_per_layer_input": VOCAB, "hidden_size_per_layer_input": PLE,
        "attention_k_eq_v": True, "num_kv_shared_layers": SHARED, "enable_moe_block": False,
        "use_double_wide_mlp": False,
        "per_layer_config": {str(i): {"head_dim": GLOBAL_HEAD_DIM, "num_key_value_heads": KV_HEADS}
                             for i, t in enumerate(types) if t == "full_attention"},
    }
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    vocab = {f"t{i}": i for i in range(VOCAB)}
    tok = {"version": "1.0", "added_tokens": [], "normalizer": None,
           "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                             "use_regex": True},
           "post_processor": None, "decoder": {"type": "ByteLevel"},
           "model": {"type": "BPE", "vocab": vocab, "merges": []}}
    with open(os.path.join(args.out, "tokenizer.json"), "w") as f:
        json.dump(tok, f)
    print(args.out, offset / 1e9, "GB", file=sys.stderr)


if __name__ == "__main__":
    main()
