"""ReasonError, its subclasses, and the status checks every binding call goes through."""

import ctypes

from . import _ffi


class ReasonError(Exception):
    """A libreason call failed. ``.status`` is the reason_status code, ``.name`` its C name
    (e.g. "REASON_ERR_IO") and the message is reason_last_error()'s text."""

    def __init__(self, status, message):
        self.status = int(status)
        self.name = _ffi.reason_status_name(self.status).decode()
        super().__init__(f"{self.name}: {message}")


class InvalidArgumentError(ReasonError, ValueError):
    """REASON_ERR_INVALID_ARG: a NULL or out-of-range argument."""


class ReasonIOError(ReasonError, OSError):
    """REASON_ERR_IO: a file could not be opened, read or mapped."""


class BufferTooSmallError(ReasonError):
    """REASON_ERR_BUFFER: a caller buffer was too small (the binding normally retries)."""


class ContextFullError(ReasonError):
    """REASON_ERR_CONTEXT_FULL: no room left in the KV cache."""


_SUBCLASSES = {
    _ffi.REASON_ERR_INVALID_ARG: InvalidArgumentError,
    _ffi.REASON_ERR_IO: ReasonIOError,
    _ffi.REASON_ERR_BUFFER: BufferTooSmallError,
    _ffi.REASON_ERR_CONTEXT_FULL: ContextFullError,
}


def error_for(status):
    """The ReasonError (subclass) for a failed status, with reason_last_error()'s message."""
    message = _ffi.reason_last_error().decode("utf-8", "replace")
    return _SUBCLASSES.get(status, ReasonError)(status, message)


def check(status):
    """Raises the matching ReasonError unless status is REASON_OK."""
    if status != _ffi.REASON_OK:
        raise error_for(status)


def read_string(call, guess=256):
    """Runs call(buf, capacity, out_len_ref) under the REASON_ERR_BUFFER protocol and returns the
    bytes written. On REASON_ERR_BUFFER the call is repeated once with room for the needed length
    plus the terminating NUL."""
    out_len = ctypes.c_size_t(0)
    buf = ctypes.create_string_buffer(guess)
    status = call(buf, guess, ctypes.byref(out_len))
    if status == _ffi.REASON_ERR_BUFFER:
        capacity = out_len.value + 1
        buf = ctypes.create_string_buffer(capacity)
        status = call(buf, capacity, ctypes.byref(out_len))
    check(status)
    return ctypes.string_at(buf, out_len.value)
