#!/usr/bin/env python3
"""Generate the gpt-oss test fixture: a tiny random-weight GptOssForCausalLM.

HOW TO RUN (from the repository root; deterministic: re-running rewrites identical files):

    python3 tools/gen_gptoss_fixtures.py

Needs numpy, torch, transformers (>= 5.x with models/gpt_oss), safetensors, tokenizers.

Writes tests/data/hf/gptoss-tiny/ (config.json + model.safetensors, BF16, no tokenizer: the test
copies tests/data/models/qwen3-tokenizer.json next to it, token ids are what is compared) and
gptoss-tiny.json + gptoss-tiny.logits.f32 in the format of the other tests/data/hf fixtures: the
prompt + 16 greedy steps, reference computed by transformers in float64 (eager attention: the
sinks; eager experts: grouped_mm has no float64).

What it exercises (gpt-oss's distinguishing parts): q/k/v/o biases, a learned sink logit per head,
sliding-window layers (window 4, shorter than the 23 tokens) alternating with full attention, YaRN
RoPE (factor 32 over an original context of 4096, attention factor 1.35), a router with bias
choosing 2 of 4 experts per token with a softmax over the chosen, clamped SwiGLU experts with
biases, stored as transformers keeps them ((E, in, out), gate/up interleaved).
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_fixtures import dump_json, top2_margin, versions  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
OUT_HF = REPO / "tests" / "data" / "hf"
TOKENIZER = REPO / "tests" / "data" / "models" / "qwen3-tokenizer.json"
N_GREEDY = 16
PROMPT = "17 * 23?"
TINY = dict(seed=401, hidden=32, layers=3, heads=4, kv_heads=2, head_dim=16, ffn=16, experts=4,
            experts_used=2, window=4, eps=1e-5, ctx=131072)
# The same with its experts as released gpt-oss checkpoints keep them: MXFP4 `*_blocks` / `*_scales`
# (U8), the reference computed by transformers from that file (Mxfp4Config(dequantize=True)).
# MXFP4 blocks run along the input dimension, so every expert input is a multiple of 32.
TINY_MXFP4 = dict(TINY, seed=402, ffn=32)
FP4_VALUES = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0,
                       -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0])


def mxfp4_pack(w):
    """(E, rows, cols) floats -> blocks (E, rows, cols/32, 16) and scales (E, rows, cols/32), U8:
    per 32 values the smallest power-of-two scale 2^(s-127) with |x| <= 6·scale, the nearest E2M1
    code, element 2i in the low nibble of byte i (OpenAI's / transformers' layout)."""
    e_, r_, c_ = w.shape
    x = w.reshape(e_, r_, c_ // 32, 32)
    amax = np.abs(x).max(-1)
    e = np.where(amax > 0, np.ceil(np.log2(np.maximum(amax, 1e-30) / 6.0)), -127)
    e = np.clip(e, -127, 127).astype(np.int32)
    codes = np.abs((x / np.ldexp(1.0, e)[..., None])[..., None] - FP4_VALUES).argmin(-1)
    codes = codes.astype(np.uint8)
    return (codes[..., 0::2] | (codes[..., 1::2] << 4)).astype(np.uint8), (e + 127).astype(np.uint8)


def weights(model, seed: int) -> dict:
    """Seeded numpy weights for every parameter, scaled to keep activations O(1)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, p in model.state_dict().items():
        shape = tuple(p.shape)
        if name.endswith("norm.weight"):
            w = 1.0 + 0.2 * rng.standard_normal(shape)
        elif name.endswith("sinks"):
            w = rng.standard_normal(shape)
        elif name.endswith("bias"):
            w = 0.3 * rng.standard_normal(shape)
        elif "embed_tokens" in name or "lm_head" in name:
            w = 0.5 * rng.standard_normal(shape)
        elif name.endswith("experts.gate_up_proj") or name.endswith("experts.down_proj"):
            w = rng.standard_normal(shape) / math.sqrt(shape[1]) * 1.5   # (E, in, out)
        else:
            w = rng.standard_normal(shape) / math.sqrt(shape[-1]) * 1.3
        out[name] = w.astype(np.float32)
    return out


def main() -> None:
    import torch
    from tokenizers import Tokenizer
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    tok = Tokenizer.from_file(str(TOKENIZER))
    make("gptoss-tiny", TINY, tok, mxfp4=False)
    make("gptoss-mxfp4-tiny", TINY_MXFP4, tok, mxfp4=True)


def make(name: str, c: dict, tok, mxfp4: bool) -> None:
    import torch
    from transformers import GptOssConfig, GptOssForCausalLM
    n_vocab = tok.get_vocab_size(with_added_tokens=True)
    cfg = GptOssConfig(vocab_size=n_vocab, hidden_size=c["hidden"], num_hidden_layers=c["layers"],
                       num_attention_heads=c["heads"], num_key_value_heads=c["kv_heads"],
                       head_dim=c["head_dim"], intermediate_size=c["ffn"],
                       num_local_experts=c["experts"], num_experts_per_tok=c["experts_used"],
                       sliding_window=c["window"], rms_norm_eps=c["eps"],
                       max_position_embeddings=c["ctx"], tie_word_embeddings=False)
    torch.manual_seed(c["seed"])
    model = GptOssForCausalLM(cfg).eval()
    sd = {k: torch.from_numpy(v).to(torch.bfloat16) for k, v in weights(model, c["seed"]).items()}
    model.load_state_dict(sd, strict=True)
    model = model.to(torch.bfloat16)
    d = OUT_HF / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    model.save_pretrained(str(d), safe_serialization=True)
    (d / "generation_config.json").unlink(missing_ok=True)
    if mxfp4:  # rewrite the experts as MXFP4 blocks and scales, as released checkpoints hold them
        from safetensors.torch import load_file, save_file
        sd = load_file(str(d / "model.safetensors"))
        out = {}
        for k, v in sorted(sd.items()):
            if k.endswith("experts.gate_up_proj") or k.endswith("experts.down_proj"):
                blocks, scales = mxfp4_pack(v.float().numpy().transpose(0, 2, 1))  # (E, out, in)
                out[k + "_blocks"] = torch.from_numpy(blocks)
                out[k + "_scales"] = torch.from_numpy(scales)
            else:
                out[k] = v
        save_file(out, str(d / "model.safetensors"), metadata={"format": "pt"})
        cfg_json = json.loads((d / "config.json").read_text())
        cfg_json["quantization_config"] = {"quant_method": "mxfp4"}
        (d / "config.json").write_text(json.dumps(cfg_json, indent=2, sort_keys=True) + "\n")
    for p in d.iterdir():
        p.chmod(0o644)
    del model
    prompt_ids = tok.encode(PROMPT, add_special_tokens=False).ids
    with tempfile.TemporaryDirectory() as tmp:
        for p in d.iterdir():
            shutil.copyfile(p, Path(tmp) / p.name)
        extra = {}
        if mxfp4:
            from transformers import Mxfp4Config
            extra["quantization_config"] = Mxfp4Config(dequantize=True)
        ref = GptOssForCausalLM.from_pretrained(tmp, dtype=torch.float64,
                                                attn_implementation="eager",
                                                experts_implementation="eager", **extra).eval()
        seq = list(prompt_ids)
        with torch.no_grad():
            for _ in range(N_GREEDY):
                seq.append(int(torch.argmax(ref(torch.tensor([seq])).logits[0, -1])))
            logits = ref(torch.tensor([seq])).logits[0].numpy()
    greedy = seq[len(prompt_ids):]
    for j, g in enumerate(greedy):
        assert int(np.argmax(logits[len(prompt_ids) - 1 + j])) == g, (j, g)
    lg32 = logits.astype("<f4")
    lg32.tofile(OUT_HF / f"{name}.logits.f32")
    files = sorted(p.name for p in d.iterdir())
    vers = versions()
    meta = {
        "model_dir": name, "hf_class": "GptOssForCausalLM",
        "dtype": "bfloat16, experts MXFP4" if mxfp4 else "bfloat16",
        "files": {f: hashlib.sha256((d / f).read_bytes()).hexdigest() for f in files},
        "tokenizer": "tests/data/models/qwen3-tokenizer.json (copied in at test time)",
        "seed": c["seed"], "prompt_text": PROMPT, "prompt_ids": prompt_ids,
        "greedy_ids": greedy, "n_prompt": len(prompt_ids), "n_greedy": len(greedy),
        "n_vocab": int(logits.shape[1]), "n_rows": int(lg32.shape[0]),
        "logits_file": f"{name}.logits.f32", "logits_dtype": "float32 little-endian",
        "logits_max_abs": float(np.abs(lg32).max()),
        "min_top2_margin": top2_margin(logits),
        "greedy_min_top2_margin": top2_margin(logits[len(prompt_ids) - 1:-1]),
        "reference_dtype": "float64", "hparams": c, "versions": vers,
    }
    (OUT_HF / f"{name}.json").write_text(dump_json(meta))
    size = sum((d / f).stat().st_size for f in files) + lg32.nbytes
    print(f"{name}: {size / 1e3:.1f} kB  P={len(prompt_ids)} max|logit|={meta['logits_max_abs']:.3f} "
          f"margin={meta['greedy_min_top2_margin']:.4f}")


if __name__ == "__main__":
    main()
