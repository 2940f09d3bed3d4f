#!/usr/bin/env python3
"""Generate the Gemma 4 test fixtures: tiny random-weight Gemma4ForCausalLM models.

HOW TO RUN (from the repository root; deterministic: re-running rewrites identical files):

    python3 tools/gen_gemma4_fixtures.py

Needs numpy, torch, transformers (>= 5.x with models/gemma4), safetensors, tokenizers.

Writes tests/data/hf/<name>/ (config.json + model.safetensors, BF16, no tokenizer: the test copies
tests/data/models/qwen3-tokenizer.json next to it, token ids are what is compared) and
<name>.json + <name>.logits.f32 in the format of the other tests/data/hf fixtures: a prompt + 16
greedy steps, reference computed by transformers in float64 (eager attention and experts).

gemma4-tiny exercises what Gemma 4 adds: 6 layers "L L G L L G" with sliding window 4 on the
local layers (head_dim 16, 2 KV heads, RoPE theta 1e4 over the whole head) and global layers with
head_dim 32, 1 KV head, K reused as V (attention_k_eq_v) and proportional RoPE (a quarter of the
frequencies, theta 1e6); q/k norms and a gain-less v norm, unscaled q·k; sandwich norms; GeGLU;
the last 2 layers reading the K/V of layers 3 and 2 (num_kv_shared_layers); per-layer embeddings
(8 per layer); the layer scalar; embeddings * sqrt(hidden); final logit soft-capping at 30.
gemma4moe-tiny adds the experts beside the MLP (4 experts, top 2, router with its own norm and
per-expert scales).
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
BASE = dict(hidden=32, ffn=24, layers=6, heads=4, kv_heads=2, head_dim=16, global_head_dim=32,
            global_kv_heads=1, window=4, kv_shared=2, ple=8, softcap=30.0,
            layer_types=["sliding_attention", "sliding_attention", "full_attention",
                         "sliding_attention", "sliding_attention", "full_attention"])
FIXTURES = {
    "gemma4-tiny": dict(BASE, seed=501, moe=False),
    "gemma4moe-tiny": dict(BASE, seed=502, moe=True, experts=4, top_k=2, ffn_exp=8),
}


def weights(model, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for name, p in model.state_dict().items():
        shape = tuple(p.shape)
        if name.endswith("layer_scalar"):
            w = rng.uniform(0.6, 1.4, shape)
        elif name.endswith("norm.weight") or "layernorm" in name or name.endswith("router.scale"):
            w = 1.0 + 0.2 * rng.standard_normal(shape)
        elif name.endswith("per_expert_scale"):
            w = rng.uniform(0.5, 1.5, shape)
        elif "embed_tokens" in name:
            w = 0.2 * rng.standard_normal(shape)
        else:
            w = rng.standard_normal(shape) / math.sqrt(shape[-1]) * 1.3
        out[name] = w.astype(np.float32)
    return out


def make(name: str, c: dict, tok) -> None:
    import torch
    from transformers.models.gemma4 import Gemma4ForCausalLM, Gemma4TextConfig
    n_vocab = tok.get_vocab_size(with_added_tokens=True)
    extra = dict(enable_moe_block=True, num_experts=c["experts"], top_k_experts=c["top_k"],
                 moe_intermediate_size=c["ffn_exp"]) if c["moe"] else {}
    cfg = Gemma4TextConfig(vocab_size=n_vocab, hidden_size=c["hidden"], intermediate_size=c["ffn"],
                           num_hidden_layers=c["layers"], num_attention_heads=c["heads"],
                           num_key_value_heads=c["kv_heads"], head_dim=c["head_dim"],
                           global_head_dim=c["global_head_dim"],
                           num_global_key_value_heads=c["global_kv_heads"], attention_k_eq_v=True,
                           sliding_window=c["window"], layer_types=c["layer_types"],
                           num_kv_shared_layers=c["kv_shared"],
                           hidden_size_per_layer_input=c["ple"], vocab_size_per_layer_input=n_vocab,
                           final_logit_softcapping=c["softcap"], pad_token_id=0, bos_token_id=2,
                           eos_token_id=1, **extra)
    torch.manual_seed(c["seed"])
    model = Gemma4ForCausalLM(cfg).eval()
    sd = {k: torch.from_numpy(v).to(torch.bfloat16) for k, v in weights(model, c["seed"]).items()
          if k != "lm_head.weight"}
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
    with tempfile.TemporaryDirectory() as tmp:
        for p in d.iterdir():
            shutil.copyfile(p, Path(tmp) / p.name)
        ref = Gemma4ForCausalLM.from_pretrained(tmp, dtype=torch.float64,
                                                attn_implementation="eager",
                                                experts_implementation="eager").eval()
        seq = list(prompt_ids)
        with torch.no_grad():
            for _ in range(N_GREEDY):
                seq.append(int(torch.argmax(ref(torch.tensor([seq]), use_cache=False).logits[0, -1])))
            logits = ref(torch.tensor([seq]), use_cache=False).logits[0].numpy()
    greedy = seq[len(prompt_ids):]
    for j, g in enumerate(greedy):
        assert int(np.argmax(logits[len(prompt_ids) - 1 + j])) == g, (j, g)
    lg32 = logits.astype("<f4")
    lg32.tofile(OUT_HF / f"{name}.logits.f32")
    files = sorted(p.name for p in d.iterdir())
    meta = {
        "model_dir": name, "hf_class": "Gemma4ForCausalLM", "dtype": "bfloat16",
        "files": {f: hashlib.sha256((d / f).read_bytes()).hexdigest() for f in files},
        "tokenizer": "tests/data/models/qwen3-tokenizer.json (copied in at test time)",
        "seed": c["seed"], "prompt_text": PROMPT, "prompt_ids": prompt_ids,
        "greedy_ids": greedy, "n_prompt": len(prompt_ids), "n_greedy": len(greedy),
        "n_vocab": int(logits.shape[1]), "n_rows": int(lg32.shape[0]),
        "logits_file": f"{name}.logits.f32", "logits_dtype": "float32 little-endian",
        "logits_max_abs": float(np.abs(lg32).max()),
        "min_top2_margin": top2_margin(logits),
        "greedy_min_top2_margin": top2_margin(logits[len(prompt_ids) - 1:-1]),
        "reference_dtype": "float64", "hparams": c, "versions": versions(),
    }
    (OUT_HF / f"{name}.json").write_text(dump_json(meta))
    size = sum((d / f).stat().st_size for f in files) + lg32.nbytes
    print(f"{name}: {size / 1e3:.1f} kB  P={len(prompt_ids)} max|logit|={meta['logits_max_abs']:.3f} "
          f"margin={meta['greedy_min_top2_margin']:.4f}")


def main() -> None:
    import torch
    from tokenizers import Tokenizer
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    tok = Tokenizer.from_file(str(TOKENIZER))
    for name, c in FIXTURES.items():
        make(name, c, tok)


if __name__ == "__main__":
    main()
