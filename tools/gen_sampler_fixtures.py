#!/usr/bin/env python3
"""Writes tests/data/sampler/fixtures.json: expected values for tests/test_sampler.c computed by an
independent numpy implementation (float64 unless stated).

  logprobs   log_softmax of float32 logit vectors (some with -inf) and the top-20 ids by logit
             (ties to the lower id).
  filters    temperature / top-k / top-p / min-p applied in a given order: the surviving token set,
             their effective logits (logit / temperature) and renormalised probabilities.
             Cases whose result would hinge on rounding (a cumulative sum or a probability ratio
             within 1e-4 of the threshold, a tie at the top-k boundary) are redrawn.
  penalties  logits after the repetition penalty (HF RepetitionPenaltyLogitsProcessor: negative
             logits multiplied, others divided, float32) and then OpenAI's presence/frequency
             penalties (logit - count * frequency - (count > 0) * presence), over the last
             penalty_last_n accepted tokens (-1: all, 0: none).

JSON has no infinities: -inf is written as null. Logits are float32 values written as the
shortest decimal of their double, so they read back exactly.

With --check-transformers, the cases in HF's order are also run through transformers' own
TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper, MinPLogitsWarper and
RepetitionPenaltyLogitsProcessor (float32 torch), which must keep the same tokens and give the same
repetition-penalised logits.

Usage: python3 tools/gen_sampler_fixtures.py [--check-transformers]
"""
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "sampler", "fixtures.json")

STAGE = {"penalties": 0, "top_k": 1, "top_p": 2, "min_p": 3, "temperature": 4}
HF_ORDER = ["penalties", "temperature", "top_k", "top_p", "min_p"]


class Num:
    """A number written with a given text (see to_json)."""

    def __init__(self, text):
        self.text = text


def to_json(v):
    """Compact JSON in which Num objects appear as their text."""
    if isinstance(v, Num):
        return v.text
    if isinstance(v, dict):
        return "{" + ",".join(json.dumps(k) + ":" + to_json(x) for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(to_json(x) for x in v) + "]"
    return json.dumps(v)


def enc32(v):
    """float32 values as their shortest decimal; read as a double and cast to float, the text
    gives back the same float32 (checked)."""
    out = []
    for x in np.asarray(v, dtype=np.float32):
        if np.isneginf(x):
            out.append(None)
            continue
        text = np.format_float_positional(x, unique=True, trim="-") if abs(x) >= 1e-4 or x == 0 \
            else np.format_float_scientific(x, unique=True, trim="-")
        assert np.float32(float(text)) == x, (x, text)
        out.append(Num(text))
    return out


def enc(v):
    """float64 values, 10 significant digits (compared with tolerances)."""
    return [None if np.isneginf(x) else Num("%.10g" % x)
            for x in np.asarray(v, dtype=np.float64)]


def f32(v):
    return np.asarray(v, dtype=np.float32)


def log_softmax(x):
    x = np.asarray(x, dtype=np.float64)
    m = x.max()
    return x - m - np.log(np.exp(x - m).sum())


def order_best(x, ids):
    """Indices into x sorted best first: higher value, then lower token id."""
    return np.lexsort((ids, -x))


class Borderline(Exception):
    pass


def apply_filters(logits, p, order):
    ids = np.arange(len(logits))
    x = np.asarray(logits, dtype=np.float64)
    keep = np.ones(len(x), dtype=bool)
    temp = 1.0
    for stage in order:
        if stage == "penalties":
            pass  # no history in these cases
        elif stage == "temperature":
            if p["temperature"] > 0:
                temp *= p["temperature"]
        elif stage == "top_k":
            k = p["top_k"]
            if 0 < k < keep.sum():
                cand = ids[keep]
                srt = cand[order_best(x[cand], cand)]
                if x[srt[k - 1]] == x[srt[k]]:
                    raise Borderline("top-k tie")
                keep[:] = False
                keep[srt[:k]] = True
        elif stage == "top_p":
            if p["top_p"] < 1.0:
                cand = ids[keep]
                e = x[cand] / temp
                srt = order_best(e, cand)
                pr = np.exp(e[srt] - e[srt].max())
                pr /= pr.sum()
                cum = np.cumsum(pr)
                n = int(np.searchsorted(cum, p["top_p"]) + 1)
                # float32 effective logits and float sums: stay 1e-5 away from the cut
                if cum[n - 1] - p["top_p"] < 1e-5 or (n >= 2 and p["top_p"] - cum[n - 2] < 1e-5):
                    raise Borderline("top-p")
                keep[:] = False
                keep[cand[srt[:n]]] = True
        elif stage == "min_p":
            if p["min_p"] > 0:
                cand = ids[keep]
                e = x[cand] / temp
                ratio = np.exp(e - e.max())
                if np.any(np.abs(ratio - p["min_p"]) < 1e-5 * p["min_p"]):
                    raise Borderline("min-p")
                keep[:] = False
                keep[cand[ratio >= p["min_p"]]] = True
        else:
            raise ValueError(stage)
    eff = np.full(len(x), -np.inf)
    eff[keep] = x[keep] / temp
    probs = np.zeros(len(x))
    z = np.exp(eff[keep] - eff[keep].max())
    probs[keep] = z / z.sum()
    return eff, probs


def check_transformers(out):
    import torch
    from transformers.generation.logits_process import (
        MinPLogitsWarper, RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper,
        TopKLogitsWarper, TopPLogitsWarper)

    def tensor(v):
        return torch.tensor([[-np.inf if x is None else float(x.text) for x in v]],
                            dtype=torch.float32)

    hf = [STAGE[s] for s in HF_ORDER]
    n = 0
    for c in out["filters"]:
        if c["order"] != hf:
            continue
        p = c["params"]
        x = tensor(c["logits"])
        ids = torch.zeros((1, 1), dtype=torch.long)
        if p["temperature"] > 0 and p["temperature"] != 1.0:
            x = TemperatureLogitsWarper(p["temperature"])(ids, x)
        if p["top_k"] > 0:
            x = TopKLogitsWarper(p["top_k"])(ids, x)
        if p["top_p"] < 1.0:
            x = TopPLogitsWarper(p["top_p"])(ids, x)
        if p["min_p"] > 0:
            x = MinPLogitsWarper(p["min_p"])(ids, x)
        kept = torch.isfinite(x[0]).numpy()
        want = np.array([e is not None for e in c["effective"]])
        assert np.array_equal(kept, want), "transformers keeps other tokens in " + c["name"]
        n += 1
    for c in out["penalties"]:
        p = c["params"]
        if p["presence_penalty"] != 0 or p["frequency_penalty"] != 0:
            continue
        last_n = p["penalty_last_n"]
        hist = c["history"]
        window = hist[-last_n:] if last_n > 0 else (hist if last_n < 0 else [])
        x = tensor(c["logits"])
        if window:
            ids = torch.tensor([window], dtype=torch.long)
            x = RepetitionPenaltyLogitsProcessor(p["repeat_penalty"])(ids, x)
        want = tensor(c["expected"])
        assert torch.equal(x, want), "repetition penalty differs in " + c["name"]
        n += 1
    print("transformers agrees on %d cases" % n)


def main():
    check = "--check-transformers" in sys.argv[1:]
    rng = np.random.default_rng(20240611)
    out = {"generator": "tools/gen_sampler_fixtures.py (numpy %s)" % np.__version__,
           "stages": STAGE, "logprobs": [], "filters": [], "penalties": []}

    # --- logprobs -------------------------------------------------------------------------------
    vectors = {
        "normal50": f32(rng.normal(0, 3, 50)),
        "offset1000": f32(rng.normal(1000, 2, 64)),
        "with_neg_inf": f32(np.where(rng.random(40) < 0.3, -np.inf, rng.normal(0, 4, 40))),
        "ties": f32([1.5, 3.0, 3.0, -2.0, 3.0, 0.0, 1.5, -np.inf, 3.0, 2.0]),
        "single": f32([0.25]),
        "wide1000": f32(rng.normal(0, 5, 1000)),
        "very_negative": f32(rng.normal(-5000, 30, 100)),
    }
    for name, v in vectors.items():
        lp = log_softmax(v)
        finite = np.isfinite(v)
        ids = np.arange(len(v))
        vv = np.where(finite, v.astype(np.float64), -np.inf)
        top = order_best(vv, ids)[:20]
        out["logprobs"].append({"name": name, "logits": enc32(v), "logprobs": enc(lp),
                                "top": [int(i) for i in top]})

    # --- filters --------------------------------------------------------------------------------
    configs = [
        ("top_k5", dict(temperature=1.0, top_k=5, top_p=1.0, min_p=0.0), HF_ORDER),
        ("top_p0.8", dict(temperature=1.0, top_k=0, top_p=0.8, min_p=0.0), HF_ORDER),
        ("top_p0.5_t0.7", dict(temperature=0.7, top_k=0, top_p=0.5, min_p=0.0), HF_ORDER),
        ("min_p0.1", dict(temperature=1.0, top_k=0, top_p=1.0, min_p=0.1), HF_ORDER),
        ("min_p0.05_t1.5", dict(temperature=1.5, top_k=0, top_p=1.0, min_p=0.05), HF_ORDER),
        ("qwen3_default", dict(temperature=0.6, top_k=20, top_p=0.95, min_p=0.0), HF_ORDER),
        ("all_four", dict(temperature=0.8, top_k=12, top_p=0.9, min_p=0.02), HF_ORDER),
        ("temp_only2", dict(temperature=2.0, top_k=0, top_p=1.0, min_p=0.0), HF_ORDER),
        ("top_p0.7_t2_hf", dict(temperature=2.0, top_k=0, top_p=0.7, min_p=0.0), HF_ORDER),
        ("top_p0.7_t2_temp_last", dict(temperature=2.0, top_k=0, top_p=0.7, min_p=0.0),
         ["penalties", "top_k", "top_p", "min_p", "temperature"]),
        ("min_p0.2_t0.5_hf", dict(temperature=0.5, top_k=0, top_p=1.0, min_p=0.2), HF_ORDER),
        ("min_p0.2_t0.5_temp_last", dict(temperature=0.5, top_k=0, top_p=1.0, min_p=0.2),
         ["penalties", "top_k", "top_p", "min_p", "temperature"]),
        ("min_p_before_top_k", dict(temperature=1.0, top_k=3, top_p=1.0, min_p=0.3),
         ["min_p", "top_k"]),
        ("large_vocab_top_p", dict(temperature=1.0, top_k=0, top_p=0.6, min_p=0.0), HF_ORDER),
        # nucleus > 1024 of a large list: the sampler's bucket path
        ("bucket_top_p", dict(temperature=1.0, top_k=0, top_p=0.5, min_p=0.0), HF_ORDER),
        ("top_p_then_top_k", dict(temperature=1.0, top_k=50, top_p=0.6, min_p=0.0),
         ["top_p", "top_k"]),
        ("min_p_then_top_p", dict(temperature=0.9, top_k=0, top_p=0.8, min_p=0.05),
         ["temperature", "min_p", "top_p"]),
    ]
    sizes = {"large_vocab_top_p": (3000, 1.0), "bucket_top_p": (8000, 0.7),
             "top_p_then_top_k": (3000, 1.0), "min_p_then_top_p": (3000, 1.0)}
    # Pairs that differ only in the order get the same logits, and their surviving sets must
    # differ, or the "order matters" test would prove nothing.
    pairs = {"top_p0.7_t2_temp_last": "top_p0.7_t2_hf",
             "min_p0.2_t0.5_temp_last": "min_p0.2_t0.5_hf"}
    for name, p, order in configs:
        n, scale = sizes.get(name, (40, 2.0))
        partner = pairs.get(name)
        for attempt in range(1000):
            v = f32(rng.normal(0, scale, n))
            try:
                eff, probs = apply_filters(v, p, order)
                if partner:
                    pp = next(c for c in configs if c[0] == partner)
                    eff2, _ = apply_filters(v, pp[1], pp[2])
                    if np.array_equal(np.isfinite(eff), np.isfinite(eff2)):
                        continue
            except Borderline:
                continue
            break
        else:
            raise RuntimeError("no suitable vector for " + name)
        if partner:  # rewrite the partner with the shared vector
            pp = next(c for c in configs if c[0] == partner)
            eff2, probs2 = apply_filters(v, pp[1], pp[2])
            for c in out["filters"]:
                if c["name"] == partner:
                    c.update(logits=enc32(v), effective=enc(eff2), probs=enc(probs2))
        out["filters"].append({
            "name": name, "logits": enc32(v), "params": p,
            "order": [STAGE[s] for s in order],
            "effective": enc(eff), "probs": enc(probs),
        })

    # --- penalties ------------------------------------------------------------------------------
    pen_cases = [
        ("repeat1.3", 1.3, 0.0, 0.0, 64),
        ("repeat0.8", 0.8, 0.0, 0.0, 64),
        ("presence0.5", 1.0, 0.5, 0.0, 64),
        ("frequency0.25", 1.0, 0.0, 0.25, 64),
        ("all_last8", 1.2, 0.3, 0.1, 8),
        ("all_history", 1.1, -0.2, 0.4, -1),
        ("window0", 1.5, 1.0, 1.0, 0),
    ]
    for name, rep, pres, freq, last_n in pen_cases:
        v = f32(rng.normal(0, 3, 30))
        v[3] = 0.0
        history = [int(t) for t in rng.integers(0, 30, 40)]
        history += [3, 3, 7, 7, 7]
        if last_n > 0:
            window = history[-last_n:]
        elif last_n < 0:
            window = history
        else:
            window = []
        counts = np.bincount(np.asarray(window, dtype=np.int64), minlength=30)
        x = v.copy()
        seen = counts > 0
        r = np.float32(rep)
        x[seen] = np.where(x[seen] < 0, x[seen] * r, x[seen] / r)
        x = (x - counts.astype(np.float32) * np.float32(freq)
             - seen.astype(np.float32) * np.float32(pres))
        out["penalties"].append({
            "name": name, "logits": enc32(v), "history": history,
            "params": dict(repeat_penalty=rep, presence_penalty=pres, frequency_penalty=freq,
                           penalty_last_n=last_n),
            "expected": enc32(x.astype(np.float32)),
        })

    if check:
        check_transformers(out)
    # One case per line, compact inside.
    with open(OUT, "w", encoding="utf-8", newline="\n") as f:
        f.write("{\n")
        keys = list(out)
        for i, key in enumerate(keys):
            val = out[key]
            if isinstance(val, list):
                f.write(" %s: [\n" % json.dumps(key))
                f.write(",\n".join("  " + to_json(c) for c in val))
                f.write("\n ]")
            else:
                f.write(" %s: %s" % (json.dumps(key), to_json(val)))
            f.write(",\n" if i + 1 < len(keys) else "\n")
        f.write("}\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
