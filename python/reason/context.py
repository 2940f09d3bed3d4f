"""Context: the sequence state (KV cache) of a model, batched decoding and logits."""

import ctypes
from dataclasses import dataclass

from . import _ffi
from ._floats import copy_floats
from ._handle import Handle
from .errors import check

KV_TYPES = {"f16": _ffi.REASON_KV_F16, "f32": _ffi.REASON_KV_F32, "bf16": _ffi.REASON_KV_BF16,
            "q8": _ffi.REASON_KV_Q8}
PRECISIONS = {"exact": _ffi.REASON_PRECISION_EXACT, "fast": _ffi.REASON_PRECISION_FAST}
UNPACKED_WEIGHTS = {"kept": _ffi.REASON_UNPACKED_KEPT, "per-step": _ffi.REASON_UNPACKED_PER_STEP}


@dataclass(frozen=True)
class ContextStats:
    """reason_context_stats as Python ints."""

    kv_slots_total: int
    kv_slots_used: int
    kv_slots_peak: int
    kv_bytes: int
    tokens_evaluated: int
    rec_slots_total: int
    rec_slots_used: int
    rec_bytes: int
    swa_slots_total: int
    swa_slots_used: int
    swa_slots_peak: int
    swa_bytes: int
    unpacked_weight_bytes: int


def _per_token(value, n, name):
    """A list of n ints from a list, or from one int repeated."""
    if isinstance(value, int):
        return [value] * n
    values = [int(v) for v in value]
    if len(values) != n:
        raise ValueError(f"{name}: {len(values)} values for {n} tokens")
    return values


class Context(Handle):
    """Sequence state for a Model. Sequences are ids in [0, n_seq_max); one thread at a time.

    ``kv_type`` is "f16", "f32", "bf16" or "q8" (8-bit, CPU only: half the bytes, faster long
    traces); ``precision`` "exact" (f32 activations) or "fast" (8-bit activations for
    integer-type weights); ``unpacked_weights``
    "kept" (parallel steps keep the weight matrices unpacked, 1.0-1.55x their bytes) or
    "per-step"; other arguments left None keep the C defaults (n_seq_max 64, n_batch 512,
    kv_block_size 16, n_outputs_max 64)."""

    _free = _ffi.reason_context_free

    def __init__(self, model, n_ctx=4096, n_seq_max=None, n_threads=0, kv_type="f16",
                 n_batch=None, kv_block_size=None, n_outputs_max=None, precision="exact",
                 unpacked_weights="kept"):
        p = _ffi.reason_context_params()
        _ffi.reason_context_params_default(ctypes.byref(p))
        p.n_ctx = n_ctx
        p.n_threads = n_threads
        p.kv_type = KV_TYPES[kv_type.lower()] if isinstance(kv_type, str) else int(kv_type)
        p.precision = (PRECISIONS[precision.lower()] if isinstance(precision, str)
                       else int(precision))
        p.unpacked_weights = (UNPACKED_WEIGHTS[unpacked_weights.lower()]
                              if isinstance(unpacked_weights, str) else int(unpacked_weights))
        for name, value in (("n_seq_max", n_seq_max), ("n_batch", n_batch),
                            ("kv_block_size", kv_block_size), ("n_outputs_max", n_outputs_max)):
            if value is not None:
                setattr(p, name, value)
        out = _ffi.reason_context_p()
        check(_ffi.reason_context_create(model._ptr, ctypes.byref(p), ctypes.byref(out)))
        super().__init__(out.value, owner=model)
        self.model = model
        self.params = p
        self.n_vocab = model.info.n_vocab
        self._n_last = 0  # tokens in the last decoded batch, for negative logits indices

    @property
    def n_ctx(self):
        return self.params.n_ctx

    @property
    def n_batch(self):
        return self.params.n_batch

    def decode(self, tokens, pos, seq_ids=0, logits=None):
        """Evaluates a batch: token i goes at position pos[i] of sequence seq_ids[i].

        pos and seq_ids are lists, or one int: the first position (then pos, pos+1, ...) and
        the sequence of every token. logits says which tokens' logits to keep: None the last
        only, True all, or one bool per token. On ContextFullError nothing is kept."""
        tokens = [int(t) for t in tokens]
        n = len(tokens)
        positions = list(range(pos, pos + n)) if isinstance(pos, int) else _per_token(pos, n, "pos")
        seqs = _per_token(seq_ids, n, "seq_ids")
        keep = None  # NULL: the last token only
        if logits is True:
            keep = (ctypes.c_int8 * n)(*[1] * n)
        elif logits is not None:
            keep = (ctypes.c_int8 * n)(*_per_token([int(bool(x)) for x in logits], n, "logits"))
        batch = _ffi.reason_batch(
            n,
            (_ffi.reason_token * n)(*tokens),
            (ctypes.c_int32 * n)(*positions),
            (ctypes.c_int32 * n)(*seqs),
            keep,
        )
        check(_ffi.reason_decode(self._ptr, ctypes.byref(batch)))
        self._n_last = n

    def logits_pointer(self, i=-1):
        """ctypes POINTER(c_float) to the logits after batch token i of the last decode (negative
        i counts from the end of that batch); valid until the next decode."""
        if i < 0:
            i += self._n_last
        out = ctypes.POINTER(ctypes.c_float)()
        check(_ffi.reason_get_logits(self._ptr, i, ctypes.byref(out)))
        return out

    def logits(self, i=-1):
        """A copy of the logits after batch token i of the last decode (numpy float32 array, or
        array('f') without numpy)."""
        return copy_floats(self.logits_pointer(i), self.n_vocab)

    def seq_length(self, seq=0):
        out = ctypes.c_int32()
        check(_ffi.reason_seq_length(self._ptr, seq, ctypes.byref(out)))
        return out.value

    def seq_truncate(self, seq, n_keep):
        """Drops positions >= n_keep of seq."""
        check(_ffi.reason_seq_truncate(self._ptr, seq, n_keep))

    def seq_free(self, seq):
        """Empties seq and releases its state."""
        check(_ffi.reason_seq_free(self._ptr, seq))

    def seq_fork(self, parent, child):
        """Makes the empty sequence child a copy of parent (sharing cache blocks)."""
        check(_ffi.reason_seq_fork(self._ptr, parent, child))

    def seq_checkpoint(self, seq, checkpoint):
        """Saves seq's state into the empty sequence checkpoint (shared cache blocks)."""
        check(_ffi.reason_seq_checkpoint(self._ptr, seq, checkpoint))

    def seq_restore(self, checkpoint, seq):
        """Replaces seq's state by the checkpoint's; the checkpoint stays."""
        check(_ffi.reason_seq_restore(self._ptr, checkpoint, seq))

    def stats(self):
        out = _ffi.reason_context_stats()
        check(_ffi.reason_context_get_stats(self._ptr, ctypes.byref(out)))
        return ContextStats(*(getattr(out, name) for name, _ in out._fields_))
