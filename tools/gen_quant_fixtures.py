#!/usr/bin/env python3
"""Generates the committed test fixtures of the tensor types and the GGUF reader.

Independent reference: the `gguf` PyPI package (gguf.quants.dequantize, GGUFWriter) and numpy;
nothing here shares code with the C implementation.

Usage: python3 tools/gen_quant_fixtures.py [--out tests/data]   (deterministic, seed 1234)

Benchmark models (random weights of real shapes) are written by tools/make_bench_model.py.

tests/data/quant/<TYPE>.bin — one file per weight type (little-endian):
    char magic[4] = "RSQF"; u32 version = 1; u32 ggml_type; u32 n_rows; u32 n (elements per row);
    u32 row_bytes;
    then n_rows times:
        u8  row[row_bytes]   raw blocks: random bytes, with every f16 scale field overwritten by
                             a value uniform in +-[1e-3, 1e-1] so all results are finite
        f32 expected[n]      gguf.quants.dequantize(row)
        f32 x[n]             a random activation vector (normal, sd 1)
        f64 dot              sum(expected * x) in float64
        f64 abs_dot          sum(|expected * x|) in float64 (the scale of the rounding error)

tests/data/quant/MXFP4.bin — the same layout, 2 rows of 512 (tests/data is near its size cap),
    from its own generator (seed 1234 + 39, so adding it left the other files unchanged). The
    E8M0 exponent byte of each block is drawn from 118..136 (scales 2^-9..2^9); row 1 also has
    blocks with e = 0, 1 (subnormal scales), 2 and 160. The packed E2M1 codes are random bytes.

tests/data/quant/halfconv.bin — f32 -> f16 / bf16 rounding cases:
    char magic[4] = "RSHC"; u32 version = 1; u32 count;
    then count times: u32 f32_bits; u16 f16_bits (numpy astype(float16), round to nearest even);
                      u16 bf16_bits (nearest-even, computed here by comparing the two candidate
                      neighbours in float64; NaN -> any NaN, checked with isnan only)

tests/data/gguf/valid_v3.gguf — written by GGUFWriter: every metadata type, arrays of strings,
    ints, floats, bools and a nested array; tensors of types F32, F16, BF16, Q8_0 and Q4_K with
    1 to 4 dimensions. The values are listed in write_gguf() and checked in tests/test_gguf.c.
tests/data/gguf/align64.gguf — the same writer with general.alignment = 64 and two tensors.
"""
import argparse
import os
import struct

import numpy as np

import gguf
from gguf import GGMLQuantizationType as QT

ROW = 768  # 3 K-quant super-blocks, 24 blocks of 32
ROWS = 3

# (type, offsets of the f16 scale fields within a block)
QUANT_TYPES = [
    (QT.Q4_0, [0]),
    (QT.Q4_1, [0, 2]),
    (QT.Q5_0, [0]),
    (QT.Q5_1, [0, 2]),
    (QT.Q8_0, [0]),
    (QT.Q4_K, [0, 2]),
    (QT.Q5_K, [0, 2]),
    (QT.Q6_K, [208]),
]


def random_scales(rng, n):
    mag = rng.uniform(1e-3, 1e-1, size=n)
    sign = rng.choice([-1.0, 1.0], size=n)
    return (mag * sign).astype(np.float16)


def make_row(rng, qtype, scale_offsets):
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    if qtype == QT.F32:
        return rng.standard_normal(ROW).astype(np.float32).view(np.uint8)
    if qtype == QT.F16:
        v = rng.standard_normal(ROW).astype(np.float16)
        v[::97] = np.float16(3e-6)  # a few subnormals
        return v.view(np.uint8)
    if qtype == QT.BF16:
        bits = rng.standard_normal(ROW).astype(np.float32).view(np.uint32) >> 16
        return bits.astype(np.uint16).view(np.uint8)
    n_blocks = ROW // block
    blocks = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    for off in scale_offsets:
        blocks[:, off:off + 2] = random_scales(rng, n_blocks).view(np.uint8).reshape(n_blocks, 2)
    return blocks.reshape(-1)


def write_quant(out_dir, rng):
    types = [(QT.F32, []), (QT.F16, []), (QT.BF16, [])] + QUANT_TYPES
    for qtype, offs in types:
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        row_bytes = ROW // block * size
        parts = [b"RSQF", struct.pack("<5I", 1, int(qtype), ROWS, ROW, row_bytes)]
        for _ in range(ROWS):
            row = make_row(rng, qtype, offs)
            assert row.size == row_bytes
            w = gguf.quants.dequantize(row, qtype).astype(np.float32).reshape(-1)
            assert w.size == ROW and np.all(np.isfinite(w))
            x = rng.standard_normal(ROW).astype(np.float32)
            prod = w.astype(np.float64) * x.astype(np.float64)
            parts += [row.tobytes(), w.tobytes(), x.tobytes(),
                      struct.pack("<2d", prod.sum(), np.abs(prod).sum())]
        with open(os.path.join(out_dir, qtype.name + ".bin"), "wb") as f:
            f.write(b"".join(parts))


def write_mxfp4(out_dir):
    qtype, rows, n = QT.MXFP4, 2, 512
    rng = np.random.default_rng(1234 + int(qtype))
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    assert (block, size) == (32, 17)
    n_blocks = n // block
    parts = [b"RSQF", struct.pack("<5I", 1, int(qtype), rows, n, n_blocks * size)]
    for r in range(rows):
        blocks = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
        blocks[:, 0] = rng.integers(118, 137, size=n_blocks)
        if r == 1:
            blocks[:4, 0] = [0, 1, 2, 160]
        row = blocks.reshape(-1)
        w = gguf.quants.dequantize(row, qtype).astype(np.float32).reshape(-1)
        assert w.size == n and np.all(np.isfinite(w))
        x = rng.standard_normal(n).astype(np.float32)
        prod = w.astype(np.float64) * x.astype(np.float64)
        parts += [row.tobytes(), w.tobytes(), x.tobytes(),
                  struct.pack("<2d", prod.sum(), np.abs(prod).sum())]
    with open(os.path.join(out_dir, qtype.name + ".bin"), "wb") as f:
        f.write(b"".join(parts))


def bf16_nearest_even(bits):
    """Round the f32 with these bits to bf16 by comparing both neighbours exactly."""
    x = np.array([bits], dtype=np.uint32).view(np.float32)[0]
    if np.isnan(x):
        return 0x7FC0
    sign = bits & 0x80000000
    mag = bits & 0x7FFFFFFF
    lo = mag >> 16  # truncation: the neighbour toward zero
    hi = lo + 1

    def value(h):
        if h == 0x7F80 and lo == 0x7F7F:
            return 2.0 ** 128  # the next value if the exponent did not stop: rounds to inf
        return float(np.array([h << 16], dtype=np.uint32).view(np.float32)[0])

    v = float(np.array([mag], dtype=np.uint32).view(np.float32)[0])
    if lo == 0x7F80:  # infinity itself
        r = lo
    else:
        dlo, dhi = v - value(lo), value(hi) - v
        r = lo if dlo < dhi or (dlo == dhi and lo % 2 == 0) else hi
    return (sign >> 16) | r


def write_halfconv(out_dir, rng):
    vals = []
    f32 = lambda v: int(np.array([v], dtype=np.float32).view(np.uint32)[0])
    specials = [0.0, -0.0, np.inf, -np.inf, 65504.0, 65519.99, 65520.0, 65536.0, 1e10, -1e10,
                3.4028234e38, 2.0**-14, 2.0**-24, 2.0**-25, 2.0**-25 * (1 + 2.0**-23),
                0.75 * 2.0**-24, 1.5 * 2.0**-24, 2.5 * 2.0**-24, 1 + 2.0**-11, 1 + 3 * 2.0**-11,
                1.0, -2.0, 0.1, 1e-8, 6.0e-8, -6.0e-5, 2.0**-14 - 2.0**-25, 2.0**-14 - 2.0**-26]
    vals += [f32(v) for v in specials]
    vals += [0x7FC00000, 0xFFC00001, 0x7F800001, 0x00000001, 0x807FFFFF, 0x7F7FFFFF, 0x7F7F8000,
             0x7F7F7FFF, 0x3F808000, 0x3F818000, 0x3F808001]
    # midpoints between consecutive f16 values (ties), and one f32 ulp on either side
    halves = rng.choice(0x7BFF, size=600, replace=False).astype(np.uint16)
    a = halves.view(np.float16).astype(np.float64)
    b = (halves + 1).view(np.float16).astype(np.float64)
    mid = ((a + b) / 2).astype(np.float32)  # exact: f16 midpoints fit in f32
    for m in mid.view(np.uint32):
        vals += [int(m), int(m) - 1, int(m) + 1]
    vals += [int(v) for v in rng.integers(0, 2**32, size=1500, dtype=np.uint64)]
    logs = rng.uniform(-27, 17, size=1500)
    vals += [f32(v) for v in (np.exp2(logs) * rng.choice([-1, 1], size=1500))]
    bits = np.array(vals, dtype=np.uint32)
    with np.errstate(over="ignore", invalid="ignore"):
        h = bits.view(np.float32).astype(np.float16).view(np.uint16)
    parts = [b"RSHC", struct.pack("<2I", 1, len(vals))]
    for v, hv in zip(bits, h):
        parts.append(struct.pack("<IHH", int(v), int(hv), bf16_nearest_even(int(v))))
    with open(os.path.join(out_dir, "halfconv.bin"), "wb") as f:
        f.write(b"".join(parts))


def write_gguf(out_dir, rng):
    VT = gguf.GGUFValueType
    w = gguf.GGUFWriter(os.path.join(out_dir, "valid_v3.gguf"), "testarch")
    w.add_name("tíny ✓ model")
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4000000000)
    w.add_int32("test.i32", -2000000000)
    w.add_float32("test.f32", 1.5)
    w.add_bool("test.bool_t", True)
    w.add_bool("test.bool_f", False)
    w.add_uint64("test.u64", 2**40 + 3)
    w.add_int64("test.i64", -(2**40))
    w.add_float64("test.f64", 3.141592653589793)
    w.add_string("test.str", "hello")
    w.add_key_value("test.empty", "", VT.STRING)  # add_string() skips empty strings
    w.add_array("test.arr_str", ["a", "", "héllo", "world"])
    w.add_array("test.arr_i32", [1, -2, 3])
    w.add_array("test.arr_f32", [0.5, -1.25])
    w.add_array("test.arr_u8", b"\x01\x02\xff")
    w.add_array("test.arr_bool", [True, False, True])
    w.add_key_value("test.arr_u64", [1, 2**63], VT.ARRAY, sub_type=VT.UINT64)
    w.add_key_value("test.arr_nested", [[1, 2], [3, 4, 5]], VT.ARRAY)

    # F32 (4 rows x 8): value i * 0.25 at flat index i
    w.add_tensor("tok_embd.weight", (np.arange(32, dtype=np.float32) * 0.25).reshape(4, 8))
    # F16 (2 x 16): value (i - 16) / 8
    w.add_tensor("blk.0.attn_q.weight", ((np.arange(32) - 16) / 8).astype(np.float16).reshape(2, 16))
    # F32 1-D (8): 1.0 .. 8.0
    w.add_tensor("output_norm.weight", np.arange(1, 9, dtype=np.float32))
    # F32 3-D (2, 3, 4) -> ne [4, 3, 2]; 4-D (1, 2, 1, 3) -> ne [3, 1, 2, 1]
    w.add_tensor("t3d", np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    w.add_tensor("t4d", np.arange(6, dtype=np.float32).reshape(1, 2, 1, 3))
    # Q8_0 (2 rows x 64): d = 0.5, q = (j % 32) - 16 in every block -> value (j % 32 - 16) / 2
    blk = np.concatenate([np.array([0.5], dtype=np.float16).view(np.uint8),
                          (np.arange(32) - 16).astype(np.int8).view(np.uint8)])
    w.add_tensor("blk.0.ffn_down.weight", np.tile(blk, 4).reshape(2, 68), raw_dtype=QT.Q8_0)
    # BF16 (1 x 4): 1, -2, 0.5, 3
    bf = (np.array([1, -2, 0.5, 3], dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)
    w.add_tensor("bf", bf.view(np.uint8).reshape(1, 8), raw_dtype=QT.BF16)
    # Q4_K (1 x 256): random block with fixed scales d = 0.01, dmin = 0.02
    q4k = rng.integers(0, 256, size=144, dtype=np.uint8)
    q4k[0:4] = np.array([0.01, 0.02], dtype=np.float16).view(np.uint8)
    w.add_tensor("blk.0.q4k.weight", q4k.reshape(1, 144), raw_dtype=QT.Q4_K)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    w = gguf.GGUFWriter(os.path.join(out_dir, "align64.gguf"), "testarch")
    w.add_custom_alignment(64)
    w.add_tensor("a", np.arange(3, dtype=np.float32))
    w.add_tensor("b", np.arange(5, dtype=np.float32) + 100)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "data"))
    args = ap.parse_args()
    rng = np.random.default_rng(1234)
    qdir, gdir = os.path.join(args.out, "quant"), os.path.join(args.out, "gguf")
    os.makedirs(qdir, exist_ok=True)
    os.makedirs(gdir, exist_ok=True)
    write_quant(qdir, rng)
    write_halfconv(qdir, rng)
    write_gguf(gdir, rng)
    write_mxfp4(qdir)


if __name__ == "__main__":
    main()
