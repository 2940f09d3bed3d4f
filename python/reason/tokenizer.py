"""Tokenizer (text <-> token ids) and Detokenizer (streaming, UTF-8-safe token -> text)."""

import ctypes
import os

from . import _ffi
from ._handle import Handle
from .errors import InvalidArgumentError, check, read_string

_SPECIAL = {
    "bos": _ffi.REASON_SPECIAL_BOS,
    "eos": _ffi.REASON_SPECIAL_EOS,
    "eot": _ffi.REASON_SPECIAL_EOT,
    "pad": _ffi.REASON_SPECIAL_PAD,
    "think_begin": _ffi.REASON_SPECIAL_THINK_BEGIN,
    "think_end": _ffi.REASON_SPECIAL_THINK_END,
}


def _path_arg(path):
    return None if path is None else os.fsencode(path)


def _token_array(ids):
    ids = [int(t) for t in ids]
    return (_ffi.reason_token * len(ids))(*ids), len(ids)


class Tokenizer(Handle):
    """A tokenizer: a model's own (``model.tokenizer``) or one loaded with ``from_file``."""

    _free = _ffi.reason_tokenizer_free

    def __init__(self, path_or_handle, owner=None, owned=True):
        """Tokenizer(path) loads a tokenizer.json or a folder holding one (as from_file);
        an int is the address of a C handle (internal)."""
        if isinstance(path_or_handle, (str, bytes, os.PathLike)):
            out = _ffi.reason_tokenizer_p()
            check(_ffi.reason_tokenizer_load(_path_arg(path_or_handle), ctypes.byref(out)))
            path_or_handle = out.value
        super().__init__(path_or_handle, owner=owner, owned=owned)

    @classmethod
    def from_file(cls, path):
        """Loads a Hugging Face tokenizer.json, or a folder holding one."""
        out = _ffi.reason_tokenizer_p()
        check(_ffi.reason_tokenizer_load(_path_arg(path), ctypes.byref(out)))
        return cls(out.value)

    @classmethod
    def _of_model(cls, model):
        out = _ffi.reason_tokenizer_p()
        check(_ffi.reason_model_tokenizer(model._ptr, ctypes.byref(out)))
        return cls(out.value, owner=model, owned=False)  # the model owns it

    @property
    def n_vocab(self):
        return _ffi.reason_tokenizer_n_vocab(self._ptr)

    def encode(self, text, add_special=False, parse_special=True):
        """Token ids of text (str or UTF-8 bytes). add_special adds BOS/EOS where the tokenizer
        asks for them; parse_special recognises special tokens written in the text."""
        if text is None:
            raise InvalidArgumentError(_ffi.REASON_ERR_INVALID_ARG, "encode: text is None")
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        flags = (_ffi.REASON_TOKENIZE_ADD_SPECIAL if add_special else 0) | (
            _ffi.REASON_TOKENIZE_PARSE_SPECIAL if parse_special else 0)
        n = ctypes.c_size_t(0)
        capacity = len(data) + 8
        while True:
            ids = (_ffi.reason_token * capacity)()
            status = _ffi.reason_tokenize(self._ptr, data, len(data), flags, ids, capacity,
                                          ctypes.byref(n))
            if status != _ffi.REASON_ERR_BUFFER or n.value <= capacity:
                break
            capacity = n.value
        check(status)
        return ids[: n.value]

    def decode(self, ids, render_special=False):
        """Text of a token sequence; special tokens are left out unless render_special."""
        arr, n = _token_array(ids)
        data = read_string(lambda buf, cap, out: _ffi.reason_detokenize(
            self._ptr, arr, n, 1 if render_special else 0, buf, cap, out), guess=4 * n + 16)
        return data.decode("utf-8")

    def token_bytes(self, token):
        """The raw bytes of one token (may be part of a UTF-8 character)."""
        return read_string(lambda buf, cap, out: _ffi.reason_token_to_bytes(
            self._ptr, int(token), buf, cap, out), guess=64)

    def special(self, which):
        """Id of a special token ("bos", "eos", "eot", "pad", "think_begin", "think_end", or the
        REASON_SPECIAL_* value); None when the tokenizer has none."""
        token = _ffi.reason_tokenizer_special(self._ptr, _SPECIAL.get(which, which))
        return None if token < 0 else token

    @property
    def bos(self):
        return self.special("bos")

    @property
    def eos(self):
        return self.special("eos")

    @property
    def eot(self):
        return self.special("eot")

    def is_end(self, token):
        """True when generation should stop at token (EOS, EOT, ...)."""
        return _ffi.reason_token_is_end(self._ptr, int(token)) != 0

    def find(self, text):
        """The id of the token spelled exactly text, or None."""
        token = _ffi.reason_tokenizer_find(self._ptr, text.encode("utf-8"))
        return None if token < 0 else token

    def detokenizer(self):
        """A fresh streaming Detokenizer."""
        return Detokenizer(self)


class Detokenizer(Handle):
    """Streaming detokenizer: push() returns only complete UTF-8 characters, holding back a
    character split across tokens until its last byte arrives; flush() emits the rest."""

    _free = _ffi.reason_detokenizer_free

    def __init__(self, tokenizer):
        out = _ffi.reason_detokenizer_p()
        check(_ffi.reason_detokenizer_create(tokenizer._ptr, ctypes.byref(out)))
        super().__init__(out.value, owner=tokenizer)

    def push(self, token):
        """The text that token completes ("" while a character is incomplete)."""
        return read_string(lambda buf, cap, out: _ffi.reason_detokenizer_push(
            self._ptr, int(token), buf, cap, out), guess=64).decode("utf-8")

    def flush(self):
        """What is held back (invalid trailing bytes become U+FFFD)."""
        return read_string(lambda buf, cap, out: _ffi.reason_detokenizer_flush(
            self._ptr, buf, cap, out), guess=16).decode("utf-8")
