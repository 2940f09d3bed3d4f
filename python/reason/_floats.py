"""float32 vectors across the boundary: numpy when installed, else array('f')."""

import array
import ctypes

try:
    import numpy
except ImportError:  # numpy is optional
    numpy = None


def copy_floats(ptr, n):
    """A copy of n floats at ctypes POINTER(c_float) ptr: numpy.ndarray or array.array('f')."""
    if numpy is not None:
        return numpy.ctypeslib.as_array(ptr, shape=(n,)).copy()
    return array.array("f", ptr[:n])


def as_float_pointer(values, n):
    """(POINTER(c_float), keep-alive) for n float32 values given as a numpy array, array('f'),
    a sequence of numbers or a ctypes POINTER(c_float) (taken as is). A length other than n is
    a ValueError: the C side cannot check it."""
    if isinstance(values, ctypes._Pointer):
        return values, None
    if numpy is not None and isinstance(values, numpy.ndarray):
        arr = numpy.ascontiguousarray(values, dtype=numpy.float32)
        if arr.ndim != 1 or arr.shape[0] != n:
            raise ValueError(f"expected {n} logits, got shape {values.shape}")
        return arr.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), arr
    if len(values) != n:
        raise ValueError(f"expected {n} logits, got {len(values)}")
    buf = (ctypes.c_float * n)(*values)
    return ctypes.cast(buf, ctypes.POINTER(ctypes.c_float)), buf
