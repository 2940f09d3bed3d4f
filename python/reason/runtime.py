"""The reasoning runtime (reason_run): traces with thinking budgets, parallel traces, answer
extraction and votes, as ``Model.reason()`` (a Result) and ``Model.reason_stream()`` (an iterator
of (trace, phase, text) events, the Result at the end).

Callbacks. libreason calls the callbacks on the thread that called reason_run, between decoding
steps: while one runs, no trace advances. A callback gets Python values (trace index, phase as
"thinking"/"answer", text as str or a TokenChoice) and returns None (or False) to go on,
END_THINKING ("end_thinking") to end that trace's thinking now, or STOP ("stop") to stop that
trace (finish_reason "cancelled"). An exception raised by a callback never unwinds through C: it
is caught, every trace is stopped at its next token, and it is raised again once reason_run has
returned (the context is left with its sequences empty, ready for another run). KeyboardInterrupt
during a run works the same way.
"""

import ctypes
import queue
import signal
import threading
from dataclasses import dataclass
from typing import NamedTuple

from . import _ffi
from .context import Context
from .errors import InvalidArgumentError, check
from .sampler import TokenChoice, sampler_params

THINKING = "thinking"
ANSWER = "answer"
DONE = "done"
END_THINKING = "end_thinking"
STOP = "stop"

PHASES = {_ffi.REASON_PHASE_THINKING: THINKING, _ffi.REASON_PHASE_ANSWER: ANSWER,
          _ffi.REASON_PHASE_DONE: DONE}
FINISH_REASONS = {
    _ffi.REASON_FINISH_NONE: "none",
    _ffi.REASON_FINISH_END: "end",
    _ffi.REASON_FINISH_LENGTH: "length",
    _ffi.REASON_FINISH_STOP_STRING: "stop_string",
    _ffi.REASON_FINISH_LOOP: "loop",
    _ffi.REASON_FINISH_PRUNED: "pruned",
    _ffi.REASON_FINISH_CANCELLED: "cancelled",
    _ffi.REASON_FINISH_CONTEXT_FULL: "context_full",
}
VOTING_FINISH_REASONS = frozenset({"end", "length", "stop_string", "loop"})
THINKING_MODES = {"auto": _ffi.REASON_THINKING_AUTO, "model": _ffi.REASON_THINKING_MODEL,
                  "prompted": _ffi.REASON_THINKING_PROMPTED, "off": _ffi.REASON_THINKING_OFF}
EFFORTS = {None: _ffi.REASON_EFFORT_DEFAULT, "default": _ffi.REASON_EFFORT_DEFAULT,
           "low": _ffi.REASON_EFFORT_LOW, "medium": _ffi.REASON_EFFORT_MEDIUM,
           "high": _ffi.REASON_EFFORT_HIGH}
EFFORT_BUDGETS = {"low": 512, "medium": 2048, "high": 8192}  # reason.h, "Effort"
VOTES = {"majority": _ffi.REASON_VOTE_MAJORITY, "logprob": _ffi.REASON_VOTE_MEAN_LOGPROB,
         "group": _ffi.REASON_VOTE_LOWEST_GROUP}
EXTRACTS = {"auto": _ffi.REASON_EXTRACT_AUTO, "boxed": _ffi.REASON_EXTRACT_BOXED,
            "number": _ffi.REASON_EXTRACT_LAST_NUMBER, "line": _ffi.REASON_EXTRACT_FINAL_LINE}
LOOP_ACTIONS = {"end": _ffi.REASON_LOOP_END, "nudge": _ffi.REASON_LOOP_NUDGE}
_ACTIONS = {END_THINKING: _ffi.REASON_ACTION_END_THINKING, STOP: _ffi.REASON_ACTION_STOP,
            "continue": _ffi.REASON_ACTION_CONTINUE}


@dataclass(frozen=True)
class Trace:
    """One trace of a run. finish_reason: "end", "length", "stop_string", "loop" (these vote),
    "pruned", "cancelled", "context_full" (these do not; their extracted answer is "")."""

    index: int
    thinking: str
    answer: str
    extracted: str
    thinking_tokens: int
    answer_tokens: int
    finish_reason: str
    mean_logprob: float
    lowest_group_confidence: float

    @property
    def voted(self):
        return self.finish_reason in VOTING_FINISH_REASONS


@dataclass(frozen=True)
class Usage:
    """Token counts of a run (generated = thinking + answer, injected text included)."""

    prompt_tokens: int
    generated_tokens: int
    thinking_tokens: int
    answer_tokens: int
    kv_peak_tokens: int
    seconds: float


class Vote(NamedTuple):
    """A distinct (normalised) answer, its number of votes and its weight."""

    answer: str
    count: int
    weight: float


@dataclass(frozen=True)
class Result:
    """What reason_run returned: the traces, the winning answer ("" when no trace gave one), its
    weight share in [0, 1], the tally (Votes by decreasing weight) and the usage."""

    traces: list
    answer: str
    share: float
    tally: list
    usage: Usage

    def __str__(self):
        return self.answer


class Event(NamedTuple):
    """A piece of streamed text of one trace (reason_stream)."""

    trace: int
    phase: str
    text: str


def _invalid(message):
    return InvalidArgumentError(_ffi.REASON_ERR_INVALID_ARG, message)


def _choose(table, value, what):
    if isinstance(value, str):
        value = value.lower()
    try:
        return table[value]
    except (KeyError, TypeError):
        names = ", ".join(repr(k) for k in table if k is not None)
        raise _invalid(f"reason: unknown {what} {value!r} (one of {names})") from None


def _action(value):
    """A callback's return value as an enum reason_action."""
    if value is None or value is False:
        return _ffi.REASON_ACTION_CONTINUE
    if isinstance(value, str) and value.lower() in _ACTIONS:
        return _ACTIONS[value.lower()]
    if isinstance(value, int) and not isinstance(value, bool) and value in (0, 1, 2):
        return value
    raise TypeError(f"reason: a callback returned {value!r}; return None, "
                    f"reason.END_THINKING ('end_thinking') or reason.STOP ('stop')")


def _text(data):
    return data.decode("utf-8", "replace") if data is not None else ""


def _budget(value, what):
    if value is None:
        return -1
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(f"reason: {what} must be an int or None, not {value!r}")
    return value


class _Callbacks:
    """The C callbacks of one run: Python callables wrapped in the ctypes function types, kept
    alive as long as this object; the first exception is kept for after the run."""

    def __init__(self, on_text, on_token, extract, cancel):
        self.on_text, self.on_token, self.extract = on_text, on_token, extract
        self.cancel = cancel
        self.error = None
        self.struct = _ffi.reason_callbacks()
        # on_token is always installed: it is where a stop request (a callback's exception, a
        # KeyboardInterrupt, a closed stream) reaches traces that have no text to stream.
        self.struct.on_token = self._c_on_token = _ffi.reason_on_token_fn(self._token)
        if on_text is not None:
            self.struct.on_text = self._c_on_text = _ffi.reason_on_text_fn(self._text)
        if extract is not None:
            self.struct.extract = self._c_extract = _ffi.reason_extract_fn(self._extract)

    def _stopping(self):
        return self.error is not None or (self.cancel is not None and self.cancel.is_set())

    def _text(self, _user, trace, phase, text, length):
        if self._stopping():
            return _ffi.REASON_ACTION_STOP
        try:
            piece = ctypes.string_at(text, length).decode("utf-8", "replace")
            return _action(self.on_text(trace, PHASES.get(phase, phase), piece))
        except BaseException as e:  # noqa: B036 — must not unwind through C
            self.error = e
            return _ffi.REASON_ACTION_STOP

    def _token(self, _user, trace, phase, choice):
        if self._stopping():
            return _ffi.REASON_ACTION_STOP
        if self.on_token is None:
            return _ffi.REASON_ACTION_CONTINUE
        try:
            c = choice.contents
            top = [(c.top_tokens[i], c.top_logprobs[i]) for i in range(c.n_top)]
            return _action(self.on_token(trace, PHASES.get(phase, phase),
                                         TokenChoice(c.token, c.logprob, top)))
        except BaseException as e:  # noqa: B036
            self.error = e
            return _ffi.REASON_ACTION_STOP

    def _extract(self, _user, text, length, out, capacity):
        if self.error is not None:
            return 0
        try:
            answer = self.extract(ctypes.string_at(text, length).decode("utf-8", "replace"))
            if answer is None:
                return 0
            if not isinstance(answer, str):
                raise TypeError(f"reason: the extract callable returned {answer!r}, not a str "
                                f"or None")
            data = answer.encode("utf-8")
            if len(data) >= capacity:
                return len(data)  # like snprintf: the library calls again with more room
            ctypes.memmove(out, data + b"\0", len(data) + 1)
            return len(data)
        except BaseException as e:  # noqa: B036
            self.error = e
            return 0


class _sigint_stops:
    """While reason_run runs on the main thread with Python's default SIGINT handler, Ctrl-C
    stops the traces (at their next token) and KeyboardInterrupt is raised after the run: the
    default handler would raise it inside a callback, where ctypes would only print it."""

    def __init__(self, callbacks):
        self.callbacks = callbacks
        self.old = None

    def _handler(self, signum, frame):
        if self.callbacks.error is None:
            self.callbacks.error = KeyboardInterrupt()

    def __enter__(self):
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self.old = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self.old is not None:
            signal.signal(signal.SIGINT, self.old)


def _result(ptr):
    """Copies a reason_result into Python objects."""
    traces = []
    for i in range(_ffi.reason_result_n_traces(ptr)):
        t = _ffi.reason_trace_info()
        check(_ffi.reason_result_trace(ptr, i, ctypes.byref(t)))
        traces.append(Trace(
            index=i, thinking=_text(t.thinking), answer=_text(t.answer),
            extracted=_text(t.extracted), thinking_tokens=t.thinking_tokens,
            answer_tokens=t.answer_tokens,
            finish_reason=FINISH_REASONS.get(t.finish_reason, str(t.finish_reason)),
            mean_logprob=t.mean_logprob, lowest_group_confidence=t.lowest_group_confidence))
    winner, share = ctypes.c_char_p(), ctypes.c_float()
    check(_ffi.reason_result_vote(ptr, ctypes.byref(winner), ctypes.byref(share)))
    tally = []
    for i in range(_ffi.reason_result_n_answers(ptr)):
        a, count, weight = ctypes.c_char_p(), ctypes.c_int32(), ctypes.c_float()
        check(_ffi.reason_result_answer(ptr, i, ctypes.byref(a), ctypes.byref(count),
                                        ctypes.byref(weight)))
        tally.append(Vote(_text(a.value), count.value, weight.value))
    u = _ffi.reason_usage()
    check(_ffi.reason_result_usage(ptr, ctypes.byref(u)))
    usage = Usage(*(getattr(u, name) for name, _ in u._fields_))
    return Result(traces=traces, answer=_text(winner.value), share=share.value, tally=tally,
                  usage=usage)


class _Run:
    """One reason_run call: arguments checked and turned into a reason_params at construction
    (so that errors surface where the call was written), executed by run()."""

    def __init__(self, model, question, n=1, *, think_budget=None, min_think=0,
                 answer_budget=512, effort=None, thinking="auto", vote="majority",
                 early_stop=False, share=0.0, prune=False, prune_warmup=4, keep_percent=90.0,
                 confidence_window=128, loop_ngram=16, loop_repeats=4, loop_action="end",
                 nudge=None, stop=None, extract="auto", system=None, wrap_up=None,
                 continuation=None, temperature=None, top_k=None, top_p=None, min_p=None,
                 repeat_penalty=None, seed=None, n_logprobs=None, on_text=None, on_token=None,
                 context=None, n_ctx=None, n_threads=0, kv_type="f16", raw_prompt=False,
                 **sampling):
        if model is None or model.closed:
            raise _invalid("reason: the model is closed")
        if not isinstance(question, str):
            raise _invalid(f"reason: the question must be a str, not {type(question).__name__}")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise _invalid(f"reason: n = {n!r} traces (must be an int >= 1)")
        for name, fn in (("on_text", on_text), ("on_token", on_token)):
            if fn is not None and not callable(fn):
                raise _invalid(f"reason: {name} must be callable")
        self.model, self.question, self.n = model, question, n
        self.raw_prompt = bool(raw_prompt)
        self.context, self.n_ctx, self.n_threads, self.kv_type = context, n_ctx, n_threads, kv_type
        self.on_text, self.on_token, self.extract_fn = on_text, on_token, None

        p = _ffi.reason_params()
        _ffi.reason_params_default(ctypes.byref(p))
        self.params = p
        keep = self._keep = []  # bytes and arrays the struct points to

        def cstr(value, what):
            if value is None:
                return None
            if not isinstance(value, str):
                raise _invalid(f"reason: {what} must be a str or None, not {value!r}")
            data = value.encode("utf-8")
            if b"\0" in data:
                raise _invalid(f"reason: {what} contains a NUL character")
            keep.append(data)
            return data

        p.n_traces = n
        p.thinking_mode = _choose(THINKING_MODES, thinking, "thinking mode")
        p.effort = _choose(EFFORTS, effort, "effort")
        p.max_thinking_tokens = _budget(think_budget, "think_budget")
        p.min_thinking_tokens = _budget(min_think, "min_think")
        p.max_answer_tokens = _budget(answer_budget, "answer_budget")
        p.wrap_up = cstr(wrap_up, "wrap_up")
        p.continuation = cstr(continuation, "continuation")
        p.system = cstr(system, "system")
        p.sampling = sampler_params(temperature=temperature, top_k=top_k, top_p=top_p,
                                    min_p=min_p, repeat_penalty=repeat_penalty, seed=seed,
                                    n_logprobs=n_logprobs, **sampling)
        if isinstance(stop, str):
            stop = [stop]
        stop = [cstr(s, "a stop string") for s in (stop or [])]
        if stop:
            arr = (ctypes.c_char_p * len(stop))(*stop)
            keep.append(arr)
            p.stop_strings = ctypes.cast(arr, ctypes.POINTER(ctypes.c_char_p))
            p.n_stop_strings = len(stop)
        if callable(extract):
            p.extract = _ffi.REASON_EXTRACT_CALLBACK
            self.extract_fn = extract
        elif isinstance(extract, str) and extract.startswith("regex:"):
            p.extract = _ffi.REASON_EXTRACT_REGEX
            p.extract_regex = cstr(extract[len("regex:"):], "the extract regex")
        else:
            p.extract = _choose(EXTRACTS, extract, "extract method")
        p.vote = _choose(VOTES, vote, "vote")
        p.early_stop = 1 if early_stop else 0
        p.early_stop_share = share
        p.prune = 1 if prune else 0
        p.prune_warmup = prune_warmup
        p.prune_keep_percent = keep_percent
        p.confidence_window = confidence_window
        p.loop_ngram = loop_ngram
        p.loop_repeats = loop_repeats
        p.loop_action = _choose(LOOP_ACTIONS, loop_action, "loop action")
        if nudge is not None:
            p.loop_nudge = cstr(nudge, "nudge")

    def _context_size(self):
        """Prompt + n x (thinking + answer budgets), an unlimited budget counting 4096."""
        if self.n_ctx is not None:
            return self.n_ctx
        p = self.params
        tok = self.model.tokenizer
        prompt = len(tok.encode(self.question)) + 256
        if p.system:
            prompt += len(tok.encode(p.system.decode("utf-8")))
        think = p.max_thinking_tokens
        if think < 0:
            effort = {v: k for k, v in EFFORTS.items() if k}.get(p.effort)
            think = EFFORT_BUDGETS.get(effort, 4096)
        if p.thinking_mode == _ffi.REASON_THINKING_OFF:
            think = 0
        extra = 16 + (len(tok.encode(p.wrap_up.decode("utf-8"))) if p.wrap_up else 0)
        answer = p.max_answer_tokens if p.max_answer_tokens >= 0 else 4096
        total = prompt + self.n * (think + extra + answer)
        return max(256, (total + 255) // 256 * 256)

    def run(self, cancel=None):
        """Runs reason_run (or reason_run_prompt) and returns the Result; raises a callback's
        exception (after the run) or the ReasonError of a failed call."""
        callbacks = _Callbacks(self.on_text, self.on_token, self.extract_fn, cancel)
        self.params.callbacks = ctypes.pointer(callbacks.struct)
        own = self.context is None
        ctx = self.context
        if own:
            ctx = Context(self.model, n_ctx=self._context_size(), n_seq_max=self.n + 1,
                          n_threads=self.n_threads, kv_type=self.kv_type,
                          n_outputs_max=self.n)
        elif ctx.closed:
            raise _invalid("reason: the context is closed")
        out = _ffi.reason_result_p()
        try:
            fn = _ffi.reason_run_prompt if self.raw_prompt else _ffi.reason_run
            with _sigint_stops(callbacks):
                status = fn(ctx._ptr, self.question.encode("utf-8"), ctypes.byref(self.params),
                            ctypes.byref(out))
            try:
                if callbacks.error is not None:
                    raise callbacks.error
                check(status)
                return _result(out.value)
            finally:
                _ffi.reason_result_free(out.value)
        finally:
            self.params.callbacks = None
            if own:
                ctx.close()


def reason(model, question, n=1, **options):
    """Runs question on model as n traces and votes; returns a Result. See Model.reason."""
    return _Run(model, question, n, **options).run()


_END = object()


class ReasonStream:
    """An iterator over the text a run streams, as Event(trace, phase, text) tuples; the Result
    is the generator's return value (``result = yield from stream``) and ``stream.result``.

    reason_run runs on a worker thread (libreason calls callbacks on the thread that runs it, so
    on_text, on_token and extract callables given here run on that worker thread too); its
    on_text feeds a queue that iteration reads. The context (a given one included) belongs to the
    worker until the run ends. Leaving the loop early (break, an exception, close(), the end of a
    with-block) stops every trace and waits for the worker; that run's result is dropped.
    Argument errors are raised here; errors of the run itself (ReasonError, a callback's
    exception) are raised by the iteration."""

    def __init__(self, model, question, n=1, **options):
        self._user_on_text = options.pop("on_text", None)
        if self._user_on_text is not None and not callable(self._user_on_text):
            raise _invalid("reason: on_text must be callable")
        self._run = _Run(model, question, n, on_text=self._on_text, **options)
        self._queue = queue.SimpleQueue()
        self._cancel = threading.Event()
        self._thread = None
        self._result = None
        self._error = None
        self._finished = False
        self._closed = False

    def _on_text(self, trace, phase, text):
        action = self._user_on_text(trace, phase, text) if self._user_on_text else None
        self._queue.put(Event(trace, phase, text))
        return action

    def _work(self):
        try:
            result = self._run.run(self._cancel)
        except BaseException as e:  # noqa: B036 — handed to the consuming thread
            self._queue.put((_END, e, None))
        else:
            self._queue.put((_END, None, result))

    def __iter__(self):
        if self._thread is not None:
            raise RuntimeError("reason_stream: a stream can be iterated only once")
        if self._closed:
            raise RuntimeError("reason_stream: the stream is closed")
        self._thread = threading.Thread(target=self._work, name="reason_run", daemon=True)
        self._thread.start()
        return self._events()

    def _events(self):
        try:
            while True:
                item = self._queue.get()
                if item[0] is _END:
                    self._thread.join()
                    self._finished = True
                    _, self._error, self._result = item
                    if self._error is not None:
                        raise self._error
                    return self._result
                yield item
        finally:
            if not self._finished:
                self.close()

    @property
    def result(self):
        """The Result, once the run has ended (reading it first runs the rest of the stream,
        dropping the events not iterated yet); raises the run's error if it failed."""
        if not self._finished:
            if self._closed:
                raise RuntimeError("reason_stream: closed before the run ended")
            for _ in (self._events() if self._thread is not None else self):
                pass
        if self._error is not None:
            raise self._error
        return self._result

    def close(self):
        """Stops every trace and waits for the worker. Idempotent."""
        self._closed = True
        self._cancel.set()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if not self._finished:
            self.close()


def reason_stream(model, question, n=1, **options):
    """A ReasonStream over the run of question on model. See Model.reason_stream."""
    return ReasonStream(model, question, n, **options)
