#!/usr/bin/env python3
"""rewrite.py SRC DST — a kernels/*.cu file as C++ for the CPU emulator: every launch
`kernel<<<grid, block[, smem, stream]>>>(args);` becomes `emu_launch(grid, block, [&] { kernel(args); });`."""
import re
import sys


def split_top(s):
    parts, depth, cur = [], 0, ''
    for ch in s:
        if ch in '([{':
            depth += 1
        elif ch in ')]}':
            depth -= 1
        if ch == ',' and depth == 0:
            parts.append(cur)
            cur = ''
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts]


src = open(sys.argv[1]).read()
out, pos = [], 0
pat = re.compile(r'<<<(.*?)>>>', re.S)
for m in pat.finditer(src):
    # the kernel name: back to the start of the statement (line start after whitespace)
    # (a launch that clang-format broke before `<<<` starts on the line above)
    start = src.rfind('\n', 0, m.start()) + 1
    if not src[start:m.start()].strip():
        start = src.rfind('\n', 0, start - 1) + 1
    while src[start] in ' \t':
        start += 1
    name = src[start:m.start()]
    cfg = split_top(m.group(1))
    # the argument list: balanced parentheses after >>>
    i = m.end()
    assert src[i] == '(', src[m.start():m.start() + 80]
    depth, j = 0, i
    while True:
        if src[j] == '(':
            depth += 1
        elif src[j] == ')':
            depth -= 1
            if depth == 0:
                break
        j += 1
    args = src[i + 1:j]
    out.append(src[pos:start])
    out.append('emu_launch(dim3(%s), dim3(%s), [&]() { %s(%s); })' % (cfg[0], cfg[1], name, args))
    pos = j + 1
out.append(src[pos:])
open(sys.argv[2], 'w').write(''.join(out))
