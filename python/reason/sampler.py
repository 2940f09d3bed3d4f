"""Sampler: picks the next token from logits (penalties, temperature, top-k/p, min-p)."""

import ctypes
from dataclasses import dataclass, field

from . import _ffi
from ._floats import as_float_pointer
from ._handle import Handle
from .errors import check

STAGES = {
    "penalties": _ffi.REASON_STAGE_PENALTIES,
    "top_k": _ffi.REASON_STAGE_TOP_K,
    "top_p": _ffi.REASON_STAGE_TOP_P,
    "min_p": _ffi.REASON_STAGE_MIN_P,
    "temperature": _ffi.REASON_STAGE_TEMPERATURE,
}

_OPTIONS = ("temperature", "top_k", "top_p", "min_p", "repeat_penalty", "presence_penalty",
            "frequency_penalty", "penalty_last_n", "seed", "n_logprobs")


@dataclass(frozen=True)
class TokenChoice:
    """A sampled token, its log-probability under the model's full distribution, and the
    n_logprobs best alternatives as (token, logprob) pairs."""

    token: int
    logprob: float
    top: list = field(default_factory=list)


def sampler_params(**options):
    """A reason_sampler_params: C defaults, overridden by the options that are not None.
    ``order`` is a list of stage names ("penalties", "temperature", "top_k", "top_p", "min_p")."""
    p = _ffi.reason_sampler_params()
    _ffi.reason_sampler_params_default(ctypes.byref(p))
    order = options.pop("order", None)
    unknown = set(options) - set(_OPTIONS)
    if unknown:
        raise TypeError(f"unknown sampling option(s): {', '.join(sorted(unknown))}")
    for name, value in options.items():
        if value is not None:
            setattr(p, name, value)
    if order is not None:
        stages = [STAGES[s] if isinstance(s, str) else int(s) for s in order]
        if len(stages) > len(p.order):
            raise ValueError(f"order: at most {len(p.order)} stages")
        p.n_order = len(stages)
        p.order[: len(stages)] = stages
    return p


class Sampler(Handle):
    """Token sampler. Options left None keep the C defaults (temperature 0.6, top_k 20, top_p 0.95,
    min_p 0, penalties off, penalty_last_n 64, seed 0); temperature <= 0 is greedy.

    n_vocab (an int, or a Model) sizes the sampler; when omitted it is taken from the length of the
    first logits given to sample()."""

    _free = _ffi.reason_sampler_free

    def __init__(self, temperature=None, top_k=None, top_p=None, min_p=None, repeat_penalty=None,
                 presence_penalty=None, frequency_penalty=None, penalty_last_n=None, seed=None,
                 n_logprobs=None, order=None, n_vocab=None):
        self.params = sampler_params(
            temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
            repeat_penalty=repeat_penalty, presence_penalty=presence_penalty,
            frequency_penalty=frequency_penalty, penalty_last_n=penalty_last_n, seed=seed,
            n_logprobs=n_logprobs, order=order)
        super().__init__(None)
        self.n_vocab = None
        self._pending = []  # tokens accepted before the C sampler exists
        if n_vocab is not None:
            self._create(n_vocab if isinstance(n_vocab, int) else n_vocab.info.n_vocab)

    def _create(self, n_vocab):
        out = _ffi.reason_sampler_p()
        check(_ffi.reason_sampler_create(ctypes.byref(self.params), n_vocab, ctypes.byref(out)))
        self._raw = out.value
        self.n_vocab = n_vocab
        pending, self._pending = self._pending, []
        for token in pending:
            self.accept(token)

    def sample(self, logits):
        """A TokenChoice from logits (n_vocab floats: numpy array, sequence, or a ctypes float
        pointer such as Context.logits_pointer()). Not recorded: call accept()."""
        if self.n_vocab is None:
            self._create(len(logits))
        ptr, _keep = as_float_pointer(logits, self.n_vocab)
        out = _ffi.reason_token_choice()
        check(_ffi.reason_sampler_sample(self._ptr, ptr, ctypes.byref(out)))
        top = [(out.top_tokens[i], out.top_logprobs[i]) for i in range(out.n_top)]
        return TokenChoice(out.token, out.logprob, top)

    def accept(self, token):
        """Records token (sampled or forced) in the penalty history."""
        if self.n_vocab is None:
            self._pending.append(int(token))
        else:
            check(_ffi.reason_sampler_accept(self._ptr, int(token)))

    def reset(self):
        """Forgets the penalty history and restarts the random stream."""
        self._pending = []
        _ffi.reason_sampler_reset(self._ptr)
