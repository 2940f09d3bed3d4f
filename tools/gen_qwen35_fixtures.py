#!/usr/bin/env python3
"""Generate the Qwen3.5 (hybrid Gated DeltaNet + gated attention) test fixtures.

HOW TO RUN (from the repository root; deterministic: re-running rewrites identical files):

    python3 tools/gen_qwen35_fixtures.py

Takes a few seconds on 2 cores. Needs numpy, torch, transformers (>= 5.x with models/qwen3_5),
safetensors. See docs/qwen35.md for the architecture and tests/data/hf/README.md for the formats.

Writes, kept tiny (tests/data must stay under 30 MB in all):

1. tests/data/deltanet/layer.json + layer.f32 — ONE transformers `Qwen3_5GatedDeltaNet` layer with
   seeded random weights, run on random inputs; the reference for tests/test_deltanet.c. The .f32
   file is the concatenation (float32 little-endian) of the arrays listed, in order, in the JSON's
   "arrays" (name, shape, offset in floats). Inputs are the layer's *projections* (the op starts
   after in_proj_*), so the C test exercises only the op: qkv (T, C), z (T, V), b (T, H_v),
   a (T, H_v), the small weights conv_w (C, kernel), A_log, dt_bias, norm_w, and the outputs:
   y (T, V) = gated-normed core output (before out_proj), out (T, n_embd) after out_proj (with
   out_proj (n_embd, V) stored too), and the final states conv_state (kernel-1, C) (oldest first)
   and ssm_state (H_v, d_k, d_v). The reference output is transformers' prompt path (chunked delta
   rule, no cache); the final states come from the same layer run with a cache.

2. tests/data/hf/qwen35-tiny/ and qwen35moe-tiny/ (the mixture-of-experts variant, its experts
   saved one tensor per expert as save_pretrained writes them) (config.json + model.safetensors, BF16, no tokenizer: the test copies
   tests/data/models/qwen3-tokenizer.json next to it at run time) and qwen35-tiny.json +
   qwen35-tiny.logits.f32 in the format of the other tests/data/hf fixtures: the prompt + 16 greedy
   steps, reference computed in float64 from the stored values.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_fixtures import dump_json, top2_margin, versions  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
OUT_HF = REPO / "tests" / "data" / "hf"
OUT_DN = REPO / "tests" / "data" / "deltanet"
TOKENIZER = REPO / "tests" / "data" / "models" / "qwen3-tokenizer.json"
N_GREEDY = 16
PROMPT = "17 * 23?"

# The deltanet layer: grouped value heads (H_v = 2 H_k) to pin the head mapping.
DN = dict(hidden=16, k_heads=2, k_dim=8, v_heads=4, v_dim=8, kernel=4, eps=1e-6, n_tok=9, seed=301)

# The MoE variant: 8 experts, 3 routed + 1 shared per token, three layers so the router and the
# shared expert's gate run after both mixer kinds.
TINY_MOE = dict(seed=303, hidden=16, layers=3,
                layer_types=["linear_attention", "full_attention", "linear_attention"],
                heads=2, kv_heads=1, head_dim=16, partial_rotary=0.25, eps=1e-6,
                theta=10000000.0, k_heads=2, k_dim=8, v_heads=4, v_dim=8, kernel=4, ctx=4096,
                experts=8, experts_used=3, ffn_exp=8, ffn_shexp=12)

TINY = dict(seed=302, hidden=16, layers=2, layer_types=["linear_attention", "full_attention"],
            heads=2, kv_heads=1, head_dim=16, partial_rotary=0.25, ffn=16, eps=1e-6,
            theta=10000000.0, k_heads=2, k_dim=8, v_heads=4, v_dim=8, kernel=4, ctx=4096)


def qwen35_weights(model, seed: int) -> dict:
    """Seeded numpy weights for every parameter (state_dict order), scaled to keep activations O(1)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, p in model.state_dict().items():
        shape = tuple(p.shape)
        if name.endswith("linear_attn.norm.weight"):   # gated RMSNorm: plain gain around 1
            w = 1.0 + 0.2 * rng.standard_normal(shape)
        elif name.endswith("norm.weight"):             # zero-centred RMSNorm: y = x/rms * (1 + w)
            w = 0.2 * rng.standard_normal(shape)
        elif name.endswith("A_log"):                   # decay rates exp(A_log) in [0.05, 2]
            w = np.log(rng.uniform(0.05, 2.0, shape))
        elif name.endswith("dt_bias"):
            w = 0.5 * rng.standard_normal(shape)
        elif name.endswith("conv1d.weight"):           # (C, 1, kernel)
            w = 0.5 * rng.standard_normal(shape)
        elif "embed_tokens" in name or "lm_head" in name:
            w = 0.3 * rng.standard_normal(shape)
        else:
            w = rng.standard_normal(shape) / math.sqrt(shape[1]) * 1.3
        out[name] = w.astype(np.float32)
    return out


def text_config(c: dict, n_vocab: int, **extra):
    from transformers import Qwen3_5TextConfig
    return Qwen3_5TextConfig(
        vocab_size=n_vocab, hidden_size=c["hidden"], intermediate_size=c.get("ffn", 32),
        num_hidden_layers=c.get("layers", 1), num_attention_heads=c.get("heads", 2),
        num_key_value_heads=c.get("kv_heads", 1), head_dim=c.get("head_dim", 16),
        rms_norm_eps=c["eps"], linear_conv_kernel_dim=c["kernel"],
        linear_key_head_dim=c["k_dim"], linear_value_head_dim=c["v_dim"],
        linear_num_key_heads=c["k_heads"], linear_num_value_heads=c["v_heads"],
        max_position_embeddings=c.get("ctx", 4096), **extra)


def gen_deltanet() -> None:
    import torch
    from transformers import DynamicCache
    from transformers.models.qwen3_5 import modeling_qwen3_5 as mq
    c = DN
    cfg = text_config(c, 8, layer_types=["linear_attention"])
    cfg._attn_implementation = "eager"
    layer = mq.Qwen3_5GatedDeltaNet(cfg, 0).double().eval()
    sd = qwen35_weights(layer, c["seed"])
    layer.load_state_dict({k: torch.from_numpy(v).double() for k, v in sd.items()})
    rng = np.random.default_rng(c["seed"] + 1)
    x = torch.from_numpy(rng.standard_normal((1, c["n_tok"], c["hidden"]))).double()
    K, V, Hv = c["k_heads"] * c["k_dim"], c["v_heads"] * c["v_dim"], c["v_heads"]
    with torch.no_grad():
        out = layer(x)                                    # prompt path, no cache (chunked rule)
        cache = DynamicCache(config=cfg)
        out_c = layer(x, cache=cache)                     # same, keeping the final states
        assert torch.allclose(out, out_c, atol=1e-12)
        conv_state = cache.get_conv_state(0, state_idx=0)[0]        # (C, state_len)
        ssm_state = cache.get_recurrent_state(0, state_idx=0)[0]    # (H_v, d_k, d_v)
        qkv = layer.in_proj_qkv(x)[0]
        z = layer.in_proj_z(x)[0]
        b = layer.in_proj_b(x)[0]
        a = layer.in_proj_a(x)[0]
        # y = the input of out_proj: recover it by hooking out_proj.
        captured = {}
        h = layer.out_proj.register_forward_hook(lambda m, i, o: captured.setdefault("y", i[0]))
        layer(x)
        h.remove()
    kern = c["kernel"]
    conv_tail = conv_state[:, -(kern - 1):].T.contiguous()          # (kernel-1, C), oldest first
    arrays = [
        ("qkv", qkv), ("z", z), ("b", b), ("a", a),
        ("conv_w", layer.conv1d.weight[:, 0, :]), ("A_log", layer.A_log),
        ("dt_bias", layer.dt_bias), ("norm_w", layer.norm.weight),
        ("out_proj", layer.out_proj.weight),
        ("y", captured["y"][0]), ("out", out[0]),
        ("conv_state", conv_tail), ("ssm_state", ssm_state),
    ]
    OUT_DN.mkdir(parents=True, exist_ok=True)
    blob, meta, off = [], [], 0
    for name, t in arrays:
        a32 = t.detach().double().numpy().astype("<f4")
        meta.append({"name": name, "shape": list(a32.shape), "offset": off})
        off += a32.size
        blob.append(a32.ravel())
    np.concatenate(blob).tofile(OUT_DN / "layer.f32")
    info = {"n_embd": c["hidden"], "n_k_head": c["k_heads"], "d_k": c["k_dim"],
            "n_v_head": c["v_heads"], "d_v": c["v_dim"], "conv_kernel": kern, "eps": c["eps"],
            "n_tok": c["n_tok"], "conv_dim": 2 * K + V, "value_dim": V, "seed": c["seed"],
            "reference": "transformers Qwen3_5GatedDeltaNet in float64 (chunked prompt path)",
            "n_floats": off, "arrays": meta, "versions": versions()}
    (OUT_DN / "layer.json").write_text(dump_json(info))
    print(f"deltanet layer: {off * 4 / 1e3:.1f} kB, max|y|={float(captured['y'].abs().max()):.3f}")


def reference(model, prompt_ids):
    import torch
    seq = list(prompt_ids)
    with torch.no_grad():
        for _ in range(N_GREEDY):
            lg = model(torch.tensor([seq])).logits[0, -1]
            seq.append(int(torch.argmax(lg)))
        logits = model(torch.tensor([seq])).logits[0].numpy()
    greedy = seq[len(prompt_ids):]
    for j, g in enumerate(greedy):
        assert int(np.argmax(logits[len(prompt_ids) - 1 + j])) == g, (j, g)
    return greedy, logits


def moe_text_config(c: dict, n_vocab: int, **extra):
    from transformers.models.qwen3_5_moe import Qwen3_5MoeTextConfig
    return Qwen3_5MoeTextConfig(
        vocab_size=n_vocab, hidden_size=c["hidden"], num_hidden_layers=c["layers"],
        num_attention_heads=c["heads"], num_key_value_heads=c["kv_heads"],
        head_dim=c["head_dim"], rms_norm_eps=c["eps"], linear_conv_kernel_dim=c["kernel"],
        linear_key_head_dim=c["k_dim"], linear_value_head_dim=c["v_dim"],
        linear_num_key_heads=c["k_heads"], linear_num_value_heads=c["v_heads"],
        max_position_embeddings=c["ctx"], num_experts=c["experts"],
        num_experts_per_tok=c["experts_used"], moe_intermediate_size=c["ffn_exp"],
        shared_expert_intermediate_size=c["ffn_shexp"], **extra)


def gen_tiny(vers: dict, moe: bool = False) -> None:
    import shutil
    import tempfile
    import torch
    from tokenizers import Tokenizer
    if moe:
        from transformers.models.qwen3_5_moe import Qwen3_5MoeForCausalLM as ModelClass
        c, name, make_config = TINY_MOE, "qwen35moe-tiny", moe_text_config
    else:
        from transformers import Qwen3_5ForCausalLM as ModelClass
        c, name, make_config = TINY, "qwen35-tiny", text_config
    tok = Tokenizer.from_file(str(TOKENIZER))
    tok_json = json.loads(TOKENIZER.read_text())
    ids = {t["content"]: t["id"] for t in tok_json["added_tokens"]}
    n_vocab = tok.get_vocab_size(with_added_tokens=True)
    cfg = make_config(c, n_vocab, layer_types=c["layer_types"], tie_word_embeddings=True,
                      eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
                      rope_parameters={"rope_type": "default", "rope_theta": c["theta"],
                                       "partial_rotary_factor": c["partial_rotary"],
                                       "mrope_section": [1, 1, 0], "mrope_interleaved": True})
    torch.manual_seed(c["seed"])
    model = ModelClass(cfg).eval()
    sd = {k: torch.from_numpy(v).to(torch.bfloat16)
          for k, v in qwen35_weights(model, c["seed"]).items() if k != "lm_head.weight"}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected and all("lm_head" in m for m in missing), (missing, unexpected)
    model = model.to(torch.bfloat16)
    d = OUT_HF / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    model.save_pretrained(str(d), safe_serialization=True)
    (d / "generation_config.json").unlink(missing_ok=True)
    for p in d.iterdir():
        p.chmod(0o644)
    del model
    prompt_ids = tok.encode(PROMPT, add_special_tokens=False).ids
    with tempfile.TemporaryDirectory() as tmp:   # transformers wants no tokenizer: weights only
        for p in d.iterdir():
            shutil.copyfile(p, Path(tmp) / p.name)
        extra = {"experts_implementation": "eager"} if moe else {}  # grouped_mm has no float64
        ref = ModelClass.from_pretrained(tmp, dtype=torch.float64, **extra).eval()
        greedy, logits = reference(ref, prompt_ids)
    lg32 = logits.astype("<f4")
    lg32.tofile(OUT_HF / f"{name}.logits.f32")
    files = sorted(p.name for p in d.iterdir())
    meta = {
        "model_dir": name, "hf_class": ModelClass.__name__, "dtype": "bfloat16",
        "files": {f: hashlib.sha256((d / f).read_bytes()).hexdigest() for f in files},
        "tokenizer": "tests/data/models/qwen3-tokenizer.json (copied in at test time)",
        "seed": c["seed"], "prompt_text": PROMPT, "user_message": PROMPT, "prompt_ids": prompt_ids,
        "greedy_ids": greedy, "greedy_text": tok.decode(greedy, skip_special_tokens=False),
        "n_prompt": len(prompt_ids), "n_greedy": len(greedy),
        "n_vocab": int(logits.shape[1]), "n_rows": int(lg32.shape[0]),
        "logits_file": f"{name}.logits.f32", "logits_dtype": "float32 little-endian",
        "logits_max_abs": float(np.abs(lg32).max()),
        "min_top2_margin": top2_margin(logits),
        "greedy_min_top2_margin": top2_margin(logits[len(prompt_ids) - 1:-1]),
        "reference_dtype": "float64",
        "hparams": {k: v for k, v in c.items() if k not in ("seed", "ctx")},
        "versions": vers,
    }
    (OUT_HF / f"{name}.json").write_text(dump_json(meta))
    size = sum((d / f).stat().st_size for f in files) + lg32.nbytes
    print(f"{name}: {size / 1e3:.1f} kB  P={len(prompt_ids)} max|logit|={meta['logits_max_abs']:.3f} "
          f"margin={meta['greedy_min_top2_margin']:.4f}")


def main() -> None:
    import torch
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    vers = versions()
    vers["safetensors"] = __import__("importlib.metadata").metadata.version("safetensors")
    gen_deltanet()
    gen_tiny(vers)
    gen_tiny(vers, moe=True)


if __name__ == "__main__":
    main()
