"""reason: Python bindings for libreason, an inference library for open reasoning models.

    import reason
    with reason.Model("model.gguf") as model:
        for piece in model.generate("What is 17 * 23?", max_tokens=256, temperature=0.6):
            print(piece, end="", flush=True)
        result = model.reason("What is 17 * 23?", n=4, think_budget=256, temperature=0.7)
        print(result.answer, result.tally)

``reason._ffi`` is the one-to-one ctypes binding of include/reason.h; the classes here are a thin
Pythonic layer over it. Every failed C call raises ReasonError (``.status``, ``.name``).

The shared library is looked for, in order: ``$REASON_LIBRARY`` (a full path; when set, the only
candidate), the copy bundled at ``reason/_lib/libreason.so*``, the repository's ``build/`` then
``build-*/`` folders (newest first, sanitizer builds skipped) when run from a source checkout, and
finally ``ctypes.util.find_library("reason")``. None found: ImportError listing what was tried.
"""

from . import _ffi
from .context import KV_TYPES, Context, ContextStats
from .errors import (BufferTooSmallError, ContextFullError, InvalidArgumentError, ReasonError,
                     ReasonIOError)
from .generate import generate, generate_tokens
from .model import TEMPLATES, Model, ModelInfo, detect_template
from .runtime import (ANSWER, END_THINKING, STOP, THINKING, Event, ReasonStream, Result, Trace,
                      Usage, Vote)
from .sampler import Sampler, TokenChoice
from .tokenizer import Detokenizer, Tokenizer

__version__ = "0.1.0"
library_path = _ffi.lib._name


def version():
    """The loaded library's version, "MAJOR.MINOR.PATCH"."""
    return _ffi.reason_version().decode()


__all__ = [
    "ANSWER", "END_THINKING", "Event", "ReasonStream", "Result", "STOP", "THINKING", "Trace",
    "Usage", "Vote", "BufferTooSmallError", "Context", "ContextFullError", "ContextStats", "Detokenizer",
    "InvalidArgumentError", "KV_TYPES", "Model", "ModelInfo", "ReasonError", "ReasonIOError",
    "Sampler", "TEMPLATES", "TokenChoice", "Tokenizer", "detect_template", "generate",
    "generate_tokens", "library_path", "version",
]
