"""_ffi against include/reason.h: every function declared, every constant and struct layout equal
(the layouts and constants are read from a small C program compiled against the header)."""

import ctypes
import os
import re
import shutil
import subprocess

import pytest

from reason import _ffi

from conftest import REPO_DIR

HEADER = os.path.join(REPO_DIR, "include", "reason.h")

pytestmark = pytest.mark.skipif(not os.path.exists(HEADER), reason="include/reason.h is absent")


def _structs():
    return {name: obj for name, obj in vars(_ffi).items()
            if name.startswith("reason_") and isinstance(obj, type)
            and issubclass(obj, ctypes.Structure)}


def _constants():
    return {name: value for name, value in vars(_ffi).items()
            if name.startswith("REASON_") and isinstance(value, int)}


def test_every_function_is_declared():
    with open(HEADER) as f:
        header = f.read()
    declared = set(re.findall(r"REASON_API[^;(]*?\b(reason_\w+)\s*\(", header))
    assert declared
    missing = sorted(n for n in declared if not callable(getattr(_ffi, n, None)))
    assert missing == []
    for name in declared:  # stubs stand for what an older library lacks
        fn = getattr(_ffi, name)
        assert not isinstance(fn, ctypes._CFuncPtr) or fn.argtypes is not None, name


def test_constants_and_layouts_match_the_header(tmp_path):
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler")
    lines = ['#include <stdio.h>', '#include <stddef.h>', '#include "reason.h"',
             'int main(void) {']
    for name in _constants():
        lines.append(f'printf("{name} %lld\\n", (long long)({name}));')
    for name, struct in _structs().items():
        lines.append(f'printf("sizeof {name} %zu\\n", sizeof({name}));')
        for field, _ in struct._fields_:
            lines.append(f'printf("{name}.{field} %zu\\n", offsetof({name}, {field}));')
    lines.append("return 0; }")
    src = tmp_path / "abi.c"
    src.write_text("\n".join(lines))
    exe = tmp_path / "abi"
    subprocess.run([cc, "-std=c11", "-I", os.path.dirname(HEADER), str(src), "-o", str(exe)],
                   check=True)
    c_values = dict(line.rsplit(" ", 1) for line in
                    subprocess.run([str(exe)], capture_output=True, text=True,
                                   check=True).stdout.splitlines())
    py_values = {name: str(value) for name, value in _constants().items()}
    for name, struct in _structs().items():
        py_values[f"sizeof {name}"] = str(ctypes.sizeof(struct))
        for field, _ in struct._fields_:
            py_values[f"{name}.{field}"] = str(getattr(struct, field).offset)
    assert {k: (v, c_values[k]) for k, v in py_values.items() if c_values[k] != v} == {}
