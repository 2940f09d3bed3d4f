#!/usr/bin/env python3
"""Generate the Hugging Face (safetensors) test models: tests/data/hf/<name>/ + reference logits.

HOW TO RUN (from the repository root; deterministic: re-running rewrites identical files):

    python3 tools/gen_hf_fixtures.py

Takes ~10 s on 2 cores. Needs numpy, torch, transformers, safetensors, tokenizers, jinja2 (the
versions are written into every JSON). Inputs: the reduced tokenizers already committed in
tests/data/models/<tok>-tokenizer.json (made by tools/gen_fixtures.py) and the real chat templates
under /work/shared/data/tokenizers/ (override with --tokenizers DIR).

What it does, per model (see tests/data/hf/README.md for the formats):
  1. builds the transformers model from a config (tiny: hidden 64, 2 layers, grouped-query
     attention) and fills it with seeded numpy weights (tools/gen_fixtures.random_weights), rounded
     to the checkpoint's dtype;
  2. save_pretrained(safe_serialization=True) into tests/data/hf/<name>/ (one model sharded with a
     small max_shard_size, so it has model.safetensors.index.json); config.json is rewritten in
     the layout the hub's checkpoints use (see README: v4 keys rope_theta/rope_scaling for two
     models, transformers 5's rope_parameters for the third);
  3. copies the reduced tokenizer.json and writes a tokenizer_config.json with the family's real
     chat template;
  4. loads the directory back with from_pretrained(dtype=float64) and runs it on exactly the
     stored values (bf16 -> f64 is exact) over the prompt
     + 16 greedy steps and writes <name>.json + <name>.logits.f32 in the format of
     tests/data/models (README there), plus the chat-template rendering of the prompt.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_fixtures import dump_json, random_weights, top2_margin, versions  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "tests" / "data" / "hf"
MODELS = REPO / "tests" / "data" / "models"
N_GREEDY = 16
USER_MSG = "What is 17 * 23?"
SEED = 1234

# Kept tiny: tests/data must stay under 30 MB in all.
MODELS_CFG = {
    "llama-BF16-sharded": dict(
        seed=200, hf="LlamaForCausalLM", tok="llama", tmpl="llama3", dtype="bfloat16",
        bos="<|begin_of_text|>", eos="<|end_of_text|>", pad=None, add_bos=True,
        hidden=64, layers=2, heads=4, kv_heads=2, head_dim=None, ffn=64, eps=1e-5,
        theta=500000.0, tied=True, ctx=2048, shard="60KB", config_style="v4",
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 64}),
    "qwen2-F16": dict(
        seed=201, hf="Qwen2ForCausalLM", tok="qwen2", tmpl="qwen2_5", dtype="float16",
        bos=None, eos="<|im_end|>", pad="<|endoftext|>", add_bos=False,
        hidden=64, layers=2, heads=4, kv_heads=2, head_dim=None, ffn=64, eps=1e-6,
        theta=1000000.0, tied=True, ctx=4096, shard=None, config_style="v4", rope_scaling=None),
    "qwen3-BF16": dict(
        seed=202, hf="Qwen3ForCausalLM", tok="qwen3", tmpl="qwen3", dtype="bfloat16",
        bos=None, eos="<|im_end|>", pad="<|endoftext|>", add_bos=False,
        hidden=64, layers=1, heads=4, kv_heads=2, head_dim=24, ffn=64, eps=1e-6,
        theta=1000000.0, tied=True, ctx=4096, shard=None, config_style="v5", rope_scaling=None),
}


def hf_config(cfg: dict, n_vocab: int, ids: dict):
    import transformers as tf
    rope = {"rope_type": "default", "rope_theta": cfg["theta"]}
    if cfg["rope_scaling"]:
        rope = {**cfg["rope_scaling"], "rope_theta": cfg["theta"]}
    common = dict(vocab_size=n_vocab, hidden_size=cfg["hidden"], intermediate_size=cfg["ffn"],
                  num_hidden_layers=cfg["layers"], num_attention_heads=cfg["heads"],
                  num_key_value_heads=cfg["kv_heads"], max_position_embeddings=cfg["ctx"],
                  rms_norm_eps=cfg["eps"], tie_word_embeddings=cfg["tied"],
                  bos_token_id=ids.get(cfg["bos"]), eos_token_id=ids[cfg["eos"]],
                  rope_parameters=rope)
    if cfg["hf"] == "LlamaForCausalLM":
        return tf.LlamaConfig(**common, attention_bias=False, mlp_bias=False)
    if cfg["hf"] == "Qwen2ForCausalLM":
        return tf.Qwen2Config(**common, use_sliding_window=False)
    if cfg["hf"] == "Qwen3ForCausalLM":
        return tf.Qwen3Config(**common, head_dim=cfg["head_dim"], attention_bias=False,
                              use_sliding_window=False)
    raise ValueError(cfg["hf"])


def v4_config(path: Path, cfg: dict) -> None:
    """Rewrite rope_parameters as the top-level rope_theta + rope_scaling of transformers 4.x,
    the layout of nearly every checkpoint on the hub (Llama 3.1/3.2, Qwen2.5)."""
    c = json.loads(path.read_text())
    rope = c.pop("rope_parameters")
    c["rope_theta"] = rope.pop("rope_theta")
    c["rope_scaling"] = rope if rope.get("rope_type", "default") != "default" else None
    path.write_text(json.dumps(c, indent=2, sort_keys=True) + "\n")


def write_tokenizer(d: Path, cfg: dict, tok_dir: Path) -> dict:
    src = MODELS / f"{cfg['tok']}-tokenizer.json"
    shutil.copyfile(src, d / "tokenizer.json")
    tok_json = json.loads(src.read_text())
    ids = {a["content"]: a["id"] for a in tok_json["added_tokens"]}
    real = json.loads((tok_dir / cfg["tmpl"] / "tokenizer_config.json").read_text())
    # Real Llama 3 configs have no add_bos_token (the BOS is written in the text, as the chat
    # template does); Qwen's say false.
    tc = {"add_bos_token": False} if not cfg["add_bos"] else {}
    tc.update({"bos_token": cfg["bos"], "eos_token": cfg["eos"],
          "pad_token": cfg["pad"], "chat_template": real["chat_template"],
          "clean_up_tokenization_spaces": False, "model_max_length": cfg["ctx"],
          "tokenizer_class": "PreTrainedTokenizerFast"})
    (d / "tokenizer_config.json").write_text(json.dumps(tc, indent=2, ensure_ascii=False) + "\n")
    return ids


def reference(model, prompt_ids: list[int]):
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


def gen(name: str, tok_dir: Path, vers: dict) -> None:
    import torch
    import transformers as tf
    from transformers import AutoTokenizer
    cfg = MODELS_CFG[name]
    d = OUT / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    ids = write_tokenizer(d, cfg, tok_dir)
    tok = AutoTokenizer.from_pretrained(str(d))
    n_vocab = len(tok)
    hf_cfg = hf_config(cfg, n_vocab, ids)
    torch.manual_seed(SEED)
    model = getattr(tf, cfg["hf"])(hf_cfg).eval()
    dtype = getattr(torch, cfg["dtype"])
    sd = {k: torch.from_numpy(v).to(dtype) for k, v in random_weights(model, cfg["seed"]).items()}
    if cfg["tied"]:
        sd.pop("lm_head.weight", None)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected and all("lm_head" in m for m in missing), (missing, unexpected)
    model = model.to(dtype)
    kw = {"max_shard_size": cfg["shard"]} if cfg["shard"] else {}
    model.save_pretrained(str(d), safe_serialization=True, **kw)
    (d / "generation_config.json").unlink(missing_ok=True)
    if cfg["config_style"] == "v4":
        v4_config(d / "config.json", cfg)
    for p in d.iterdir():
        p.chmod(0o644)      # the safetensors writer makes 0600 files

    prompt_text = (cfg["bos"] if cfg["add_bos"] else "") + USER_MSG
    prompt_ids = tok(prompt_text, add_special_tokens=False)["input_ids"]
    chat_text = tok.apply_chat_template([{"role": "user", "content": USER_MSG}], tokenize=False,
                                        add_generation_prompt=True)
    # The reference is what transformers makes of the directory, loaded afresh in float64 (exact:
    # every stored value is representable). Not model.double(): .to(bfloat16) above also rounded
    # the rotary inv_freq buffer, which a loaded model recomputes in float32.
    del model
    ref_model = getattr(tf, cfg["hf"]).from_pretrained(str(d), dtype=torch.float64).eval()
    greedy, logits = reference(ref_model, prompt_ids)
    lg32 = logits.astype("<f4")
    lg32.tofile(OUT / f"{name}.logits.f32")
    files = sorted(p.name for p in d.iterdir())
    meta = {
        "model_dir": name, "hf_class": cfg["hf"], "dtype": cfg["dtype"],
        "files": {f: hashlib.sha256((d / f).read_bytes()).hexdigest() for f in files},
        "seed": cfg["seed"], "prompt_text": prompt_text, "user_message": USER_MSG,
        "prompt_ids": prompt_ids, "chat_text": chat_text,
        "greedy_ids": greedy, "greedy_text": tok.decode(greedy, skip_special_tokens=False),
        "n_prompt": len(prompt_ids), "n_greedy": len(greedy),
        "n_vocab": int(logits.shape[1]), "n_rows": int(lg32.shape[0]),
        "logits_file": f"{name}.logits.f32", "logits_dtype": "float32 little-endian",
        "logits_max_abs": float(np.abs(lg32).max()),
        "min_top2_margin": top2_margin(logits),
        "greedy_min_top2_margin": top2_margin(logits[len(prompt_ids) - 1:-1]),
        "reference_dtype": "float64",
        "hparams": {"n_embd": cfg["hidden"], "n_layer": cfg["layers"], "n_head": cfg["heads"],
                    "n_head_kv": cfg["kv_heads"],
                    "head_dim": cfg["head_dim"] or cfg["hidden"] // cfg["heads"],
                    "n_ff": cfg["ffn"], "rms_eps": cfg["eps"], "rope_theta": cfg["theta"],
                    "tied_embeddings": cfg["tied"], "rope_scaling": cfg["rope_scaling"],
                    "n_ctx_train": cfg["ctx"]},
        "versions": vers,
    }
    (OUT / f"{name}.json").write_text(dump_json(meta))
    size = sum((d / f).stat().st_size for f in files) + lg32.nbytes
    print(f"{name:20s} {size / 1e3:6.1f} kB  P={len(prompt_ids)} "
          f"max|logit|={meta['logits_max_abs']:.3f} margin={meta['greedy_min_top2_margin']:.4f}",
          flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=sorted(MODELS_CFG), action="append")
    ap.add_argument("--tokenizers", default="/work/shared/data/tokenizers", type=Path)
    args = ap.parse_args()
    import torch
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    vers = versions()
    vers["safetensors"] = __import__("importlib.metadata").metadata.version("safetensors")
    OUT.mkdir(parents=True, exist_ok=True)
    for name in args.only or list(MODELS_CFG):
        gen(name, args.tokenizers, vers)


if __name__ == "__main__":
    main()
