"""KV memory of parallel traces on one shared prompt: the pool's peak vs. what unshared copies
would need (n * prompt + generated). Run from the repository root:
    PYTHONPATH=python REASON_LIBRARY=build/libreason.so python3 tools/measure_kv_sharing.py
"""
import reason
sysmsg = " ".join(["Background: a shop sells pencils, pens, erasers and notebooks at fixed prices."] * 40)
with reason.Model("models/SmolLM2-135M-Instruct.Q4_1.gguf") as m:
    for n in (1, 8, 16):
        r = m.reason("Tom has 6 cookies and gets 6 more. How many cookies does he have?", n=n,
                     think_budget=48, answer_budget=16, system=sysmsg, temperature=0.6, seed=1)
        u = r.usage
        unshared = n * u.prompt_tokens + u.generated_tokens
        print(f"n={n:2d} prompt={u.prompt_tokens} generated={u.generated_tokens} kv_peak={u.kv_peak_tokens} "
              f"unshared(n*prompt+generated)={unshared} saving={unshared/u.kv_peak_tokens:.2f}x")
