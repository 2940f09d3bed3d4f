#!/usr/bin/env python3
"""Side-by-side speed of libreason and llama.cpp on the same GGUF files (docs/performance.md).

Usage:
  python3 tools/bench_compare.py --llama-bench /path/to/llama-bench \\
      --model models/bench/qwen2.5-0.5b-shaped-random-q8_0.gguf [--model ...] \\
      [--tests pp512,tg128,tg64@4096,pp512@4096,tg64x8] [--rounds 2] [--threads 2]

llama.cpp is never built or stored in this repository: build its llama-bench outside it and pass
its path (LD_LIBRARY_PATH is set to the binary's directory). Engines run alternated test by test
(llama.cpp, libreason exact, libreason fast, then again for each round), so drift on a shared
machine hits all three alike; each cell is the median of the rounds, each round itself the engine's
own median or mean of its repetitions.

Tests: ppN (a prompt of N tokens), tgN (N tokens generated one at a time), either with @D (D tokens
already in the cache), and tgNxK (K traces forked from one prompt decoding together, aggregate;
llama-bench has no such test). libreason "exact" is the default precision, "fast" sets
REASON_CPU_MATMUL=q8 (8-bit activations, like llama.cpp's quantized products).

Prints a markdown table (tokens/s; ratios against llama.cpp) and, with --json FILE, every sample.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def parse_test(spec):
    m = re.fullmatch(r"(pp|tg)(\d+)(?:@(\d+))?(?:x(\d+))?", spec)
    if not m:
        raise SystemExit(f"bad test {spec!r}: ppN, tgN, with @DEPTH or xTRACES")
    kind, n, depth, k = m.group(1), int(m.group(2)), int(m.group(3) or 0), int(m.group(4) or 1)
    if kind == "pp" and k > 1:
        raise SystemExit(f"{spec}: parallel traces are a generation test")
    return kind, n, depth, k


def run(cmd, env=None):
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    if out.returncode != 0:
        sys.stderr.write(out.stderr[-2000:])
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return out.stdout


def llama(bench, model, test, threads, reps):
    kind, n, depth, k = test
    if k > 1:
        return None
    cmd = [bench, "-m", model, "-t", str(threads), "-r", str(reps), "-o", "json", "-d", str(depth),
           "-p", str(n if kind == "pp" else 0), "-n", str(n if kind == "tg" else 0)]
    env = dict(os.environ, LD_LIBRARY_PATH=os.path.dirname(os.path.abspath(bench)))
    rows = json.loads(run(cmd, env))
    return rows[0]["avg_ts"]


def libreason(exe, model, test, threads, reps, fast):
    kind, n, depth, k = test
    cmd = [exe, "-m", model, "-t", str(threads), "-r", str(reps), "--bw", "1", "--json"]
    if kind == "pp":
        cmd += ["-p", str(n), "-n", "1"] + (["--depth", str(depth)] if depth else [])
    else:
        cmd += ["-p", "16", "-n", str(n)] + (["--depth", str(depth)] if depth else [])
        if k > 1:
            cmd += ["--parallel", str(k)]
    env = dict(os.environ)
    env.pop("REASON_CPU_MATMUL", None)
    if fast:
        env["REASON_CPU_MATMUL"] = "q8"
    res = json.loads(run(cmd, env).strip().splitlines()[-1])
    if kind == "pp":
        return res["pp_depth" if depth else "pp"]["tokens_per_s"]
    return res["tg"]["tokens_per_s"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--llama-bench", required=True)
    ap.add_argument("--reason-bench", default=os.path.join(ROOT, "build", "examples", "reason-bench"))
    ap.add_argument("--model", action="append", required=True)
    ap.add_argument("--tests", default="pp512,tg128")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    args = ap.parse_args()
    tests = [(t, parse_test(t)) for t in args.tests.split(",")]
    samples = []
    print("| model | test | llama.cpp | libreason exact | libreason fast | exact / llama.cpp | "
          "fast / llama.cpp |")
    print("|---|---|---|---|---|---|---|")
    for model in args.model:
        for name, test in tests:
            reps = 1 if test[2] else 2
            got = {"llama": [], "exact": [], "fast": []}
            for _ in range(args.rounds):
                v = llama(args.llama_bench, model, test, args.threads, reps)
                if v is not None:
                    got["llama"].append(v)
                got["exact"].append(libreason(args.reason_bench, model, test, args.threads, reps,
                                              False))
                got["fast"].append(libreason(args.reason_bench, model, test, args.threads, reps,
                                             True))
            med = {e: statistics.median(v) if v else None for e, v in got.items()}
            samples.append({"model": model, "test": name, "samples": got})

            def cell(e):
                return "—" if med[e] is None else f"{med[e]:.1f} ({', '.join(f'{x:.0f}' for x in got[e])})"

            def ratio(e):
                return "—" if not med["llama"] else f"{med[e] / med['llama']:.2f}×"

            print(f"| {os.path.basename(model)} | {name} | {cell('llama')} | {cell('exact')} | "
                  f"{cell('fast')} | {ratio('exact')} | {ratio('fast')} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(samples, f, indent=1)


if __name__ == "__main__":
    main()
