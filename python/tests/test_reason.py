"""The reasoning runtime through the package (Model.reason, Model.reason_stream) on the tiny random
models. Random weights give near-uniform distributions, so behaviour is forced where it must be
exact (as tests/test_trace.c does): min = max thinking budgets, callbacks that end thinking or stop
traces, scripted extractors, and a negative frequency penalty over a prompt full of one token."""

import os
import threading

import pytest

import reason
from reason import _ffi

from conftest import MODELS_DIR

QWEN_THINKING_PROMPT = ("<|im_start|>user\nWhat is 17 * 23?<|im_end|>\n"
                        "<|im_start|>assistant\n<think>\n")
WRAP_UP = "Considering the limited time, I have to give the solution now."
CLOSE = "\n</think>\n\n"
FAST = dict(n_threads=1)


def _load(name):
    path = os.path.join(MODELS_DIR, name + ".gguf")
    if not os.path.exists(path):
        pytest.skip(f"tests/data/models/{name}.gguf is absent")
    return reason.Model(path)


@pytest.fixture(scope="module")
def qwen():
    with _load("qwen3-Q8_0") as model:
        yield model


@pytest.fixture(scope="module")
def llama():
    with _load("llama-Q8_0") as model:
        yield model


def n_tokens(model, text):
    return len(model.tokenizer.encode(text, add_special=False, parse_special=True))


def think(model, **options):
    """A run from a prompt that ends inside an opened <think> (qwen3, model mode)."""
    return model.reason(QWEN_THINKING_PROMPT, raw_prompt=True, **FAST, **options)


def same_trace(a, b):
    return (a.thinking, a.answer, a.thinking_tokens, a.answer_tokens, a.finish_reason) == (
        b.thinking, b.answer, b.thinking_tokens, b.answer_tokens, b.finish_reason)


# ---- budgets -------------------------------------------------------------------------------------

def test_exact_thinking_budget(qwen):
    r = think(qwen, n=3, think_budget=24, min_think=24, answer_budget=8, wrap_up=WRAP_UP, seed=11)
    assert isinstance(r, reason.Result) and len(r.traces) == 3
    n_close, n_wrap = n_tokens(qwen, CLOSE), n_tokens(qwen, WRAP_UP)
    assert n_close == 3
    for i, t in enumerate(r.traces):
        assert isinstance(t, reason.Trace) and t.index == i
        assert t.thinking_tokens == 24 + n_wrap + n_close
        assert t.thinking.endswith(WRAP_UP) and "</think>" not in t.thinking
        assert t.finish_reason in ("length", "end")
        assert t.answer_tokens == 8 if t.finish_reason == "length" else t.answer_tokens <= 8
        assert t.mean_logprob < 0 and t.lowest_group_confidence > 0
        assert t.voted
    u = r.usage
    assert u.thinking_tokens == sum(t.thinking_tokens for t in r.traces)
    assert u.answer_tokens == sum(t.answer_tokens for t in r.traces)
    assert u.generated_tokens == u.thinking_tokens + u.answer_tokens
    assert u.prompt_tokens == n_tokens(qwen, QWEN_THINKING_PROMPT)
    assert u.seconds > 0 and u.kv_peak_tokens >= u.prompt_tokens
    assert sum(v.count for v in r.tally) == 3 and r.answer == r.tally[0].answer
    assert 0 < r.share <= 1

    # think_budget 0: the closing at once; answer_budget 0: "length" at once
    t = think(qwen, think_budget=0, answer_budget=5, wrap_up=WRAP_UP).traces[0]
    assert t.thinking_tokens == n_wrap + n_close and t.thinking == WRAP_UP
    t = think(qwen, think_budget=0, answer_budget=0).traces[0]
    assert (t.finish_reason, t.answer_tokens) == ("length", 0)


def test_prompted_budget_from_a_question(llama):
    # llama has no <think> tokens: prompted mode, the runtime opens the thinking itself
    r = llama.reason("What is 2 + 3?", n=2, think_budget=10, min_think=10, answer_budget=5,
                     wrap_up="Time is up.", **FAST)
    for t in r.traces:
        assert t.thinking_tokens == 10 + n_tokens(llama, "Time is up.") + n_tokens(llama, CLOSE)
        assert "Time is up." in t.thinking and "<think>" not in t.thinking
        assert t.answer_tokens <= 5
    assert r.usage.prompt_tokens > 20  # the prompted-thinking system message


def test_effort_and_thinking_off(qwen):
    # effort "low" sets a 512-token budget; min above it shows it
    t = think(qwen, effort="low", min_think=100000, answer_budget=0).traces[0]
    assert t.thinking_tokens == 512 + 3
    t = qwen.reason("Hi", thinking="off", answer_budget=6, **FAST).traces[0]
    assert t.thinking_tokens == 0 and t.thinking == "" and t.answer_tokens <= 6


# ---- parallel traces -----------------------------------------------------------------------------

def test_greedy_traces_identical(qwen):
    options = dict(temperature=0, think_budget=16, answer_budget=8, loop_ngram=0)
    one = think(qwen, **options).traces[0]
    three = think(qwen, n=3, **options)
    assert all(same_trace(one, t) for t in three.traces)


def test_same_seed_same_result(qwen):
    options = dict(n=3, temperature=1.0, seed=1234, think_budget=20, answer_budget=10)
    a, b = think(qwen, **options), think(qwen, **options)
    assert all(same_trace(x, y) for x, y in zip(a.traces, b.traces))
    assert a.traces[0].thinking != a.traces[1].thinking  # trace i uses seed + i
    c = think(qwen, **dict(options, seed=99))
    assert [t.thinking for t in c.traces] != [t.thinking for t in a.traces]


def test_given_context_is_reused(qwen):
    with reason.Context(qwen, n_ctx=512, n_seq_max=4, n_outputs_max=3, n_threads=1) as ctx:
        a = think(qwen, n=3, temperature=0, think_budget=8, answer_budget=4, context=ctx)
        b = think(qwen, n=3, temperature=0, think_budget=8, answer_budget=4, context=ctx)
        assert all(same_trace(x, y) for x, y in zip(a.traces, b.traces))
        assert all(ctx.seq_length(s) == 0 for s in range(4))
        with pytest.raises(reason.ReasonError) as info:
            think(qwen, n=4, context=ctx)  # needs n_seq_max 5
        assert info.value.status == _ffi.REASON_ERR_INVALID_ARG and "n_seq_max" in str(info.value)


# ---- callbacks, votes ----------------------------------------------------------------------------

class Script:
    """on_token ends trace i's thinking after end_at[i] thinking tokens; on_text records each
    trace's streamed text; the extractor finds a trace by its answer text and gives its scripted
    answer."""

    def __init__(self, end_at, answers):
        self.end_at, self.answers = end_at, answers
        self.seen = {}
        self.text = {}

    def on_token(self, trace, phase, choice):
        assert phase in (reason.THINKING, reason.ANSWER)
        assert isinstance(choice, reason.TokenChoice) and choice.top == []
        key = (trace, phase)
        self.seen[key] = self.seen.get(key, 0) + 1
        if phase == reason.THINKING and self.seen[key] == self.end_at.get(trace):
            return reason.END_THINKING
        return None

    def on_text(self, trace, phase, text):
        self.text[trace, phase] = self.text.get((trace, phase), "") + text

    def extract(self, text):
        for i, answer in self.answers.items():
            if self.text.get((i, reason.ANSWER), "") == text:
                return answer
        return None


def test_callback_extractor_vote_and_early_stop(qwen):
    answers = {i: "8" if i == 1 else "7" for i in range(5)}
    s = Script({i: 2 + 4 * i for i in range(5)}, answers)  # trace i finishes before i + 1
    options = dict(n=5, think_budget=100, answer_budget=3, loop_ngram=0)
    r = think(qwen, early_stop=True, on_token=s.on_token, on_text=s.on_text, extract=s.extract,
              **options)
    cancelled = [t for t in r.traces if t.finish_reason == "cancelled"]
    voted = [t for t in r.traces if t.voted]
    assert cancelled and r.traces[4].finish_reason == "cancelled"
    assert all(t.extracted == "" and t.index >= 3 for t in cancelled)
    assert all(t.extracted == answers[t.index] for t in voted)
    assert r.answer == "7"
    assert r.share == pytest.approx((len(voted) - 1) / len(voted))
    assert r.tally == [("7", len(voted) - 1, float(len(voted) - 1)), ("8", 1, 1.0)]
    assert isinstance(r.tally[0], reason.Vote) and r.tally[0].count == len(voted) - 1
    for t in voted:  # END_THINKING injects the closing without the wrap-up
        assert t.thinking_tokens == s.end_at[t.index] + 3
    for t in cancelled:  # cancelled mid-thinking, or just after
        assert t.thinking_tokens <= s.end_at[t.index] + 3

    s = Script({i: 2 + 4 * i for i in range(5)}, answers)
    r = think(qwen, on_token=s.on_token, on_text=s.on_text, extract=s.extract, **options)
    assert all(t.voted for t in r.traces)
    assert r.tally == [("7", 4, 4.0), ("8", 1, 1.0)] and r.share == pytest.approx(0.8)


def test_stop_from_a_callback(qwen):
    def on_token(trace, phase, choice):
        if trace == 1 and phase == "answer":
            return "stop"
        if phase == "thinking":
            return reason.END_THINKING
    r = think(qwen, n=2, answer_budget=6, on_token=on_token, n_logprobs=2)
    assert r.traces[1].finish_reason == "cancelled" and r.traces[1].answer_tokens == 1
    assert r.traces[1].extracted == ""
    assert r.traces[0].finish_reason in ("end", "length")


def test_logprobs_reach_on_token(qwen):
    choices = []
    think(qwen, think_budget=3, answer_budget=2, n_logprobs=3,
          on_token=lambda trace, phase, c: choices.append(c))
    assert choices and all(len(c.top) == 3 and c.logprob <= 0 for c in choices)


@pytest.mark.parametrize("model_name", ["qwen", "llama"])
def test_on_text_concatenates_to_texts(model_name, request):
    model = request.getfixturevalue(model_name)
    pieces = {}

    def on_text(trace, phase, text):
        assert isinstance(text, str) and text
        pieces.setdefault((trace, phase), []).append(text)

    if model_name == "qwen":
        r = think(model, n=3, think_budget=20, answer_budget=12, temperature=1.0, seed=3,
                  wrap_up=WRAP_UP, on_text=on_text)
    else:
        r = model.reason("What is 2 + 3?", n=3, think_budget=20, answer_budget=12,
                         temperature=1.0, seed=3, on_text=on_text, **FAST)
    for t in r.traces:
        assert "".join(pieces.get((t.index, "thinking"), [])) == t.thinking
        assert "".join(pieces.get((t.index, "answer"), [])) == t.answer
        assert "<think>" not in t.thinking and "</think>" not in t.thinking
    assert any(t.answer for t in r.traces)


class Boom(Exception):
    pass


@pytest.mark.parametrize("where", ["on_token", "on_text", "extract"])
def test_callback_exception_propagates_after_the_run(qwen, where):
    calls = []

    def fail(*args):
        calls.append(args)
        if len(calls) == 3 or where == "extract":
            raise Boom(where)
        return None

    with reason.Context(qwen, n_ctx=512, n_seq_max=3, n_outputs_max=2, n_threads=1) as ctx:
        options = dict(n=2, think_budget=10, answer_budget=5, context=ctx)
        with pytest.raises(Boom, match=where):
            think(qwen, **options, **{where: fail})
        if where != "extract":
            assert len(calls) == 3  # the first exception stops every trace; none is called again
        assert all(ctx.seq_length(s) == 0 for s in range(3))
        assert len(think(qwen, **options).traces) == 2  # the context is usable again


def test_bad_callback_return_value(qwen):
    with pytest.raises(TypeError, match="END_THINKING"):
        think(qwen, think_budget=4, answer_budget=2, on_token=lambda *a: True)


# ---- answers, stop strings, loops ----------------------------------------------------------------

SEVENS = "7" * 44


def sevens_prompt():
    return (f"<|im_start|>user\n{SEVENS}<|im_end|>\n<|im_start|>assistant\n"
            "<think>\n\n</think>\n\n")


def test_stop_strings_loop_guard_and_extract_kinds(qwen):
    # a negative frequency penalty over a prompt of 7s makes greedy decoding write 7s
    force = dict(temperature=0, frequency_penalty=-10.0, penalty_last_n=-1, answer_budget=100)
    run = lambda **o: qwen.reason(sevens_prompt(), raw_prompt=True, **FAST, **force, **o)
    t = run(stop=["x", "777"]).traces[0]
    assert (t.finish_reason, t.answer_tokens, t.answer) == ("stop_string", 3, "")
    r = run(loop_ngram=4, loop_repeats=4)
    t = r.traces[0]
    assert (t.thinking_tokens, t.finish_reason, t.answer) == (0, "loop", "77777777")
    assert t.extracted == "77777777" and r.answer == "77777777" and r.share == 1.0
    nudge = "\nLet me try a different approach.\n"
    t = run(loop_ngram=4, loop_action="nudge", nudge=nudge).traces[0]
    assert t.finish_reason == "loop" and "77777777" + nudge + "7" in t.answer
    assert run(loop_ngram=4, extract="regex:(7{3})7*$").traces[0].extracted == "777"
    assert run(loop_ngram=4, extract="line").traces[0].extracted == "77777777"
    assert run(loop_ngram=4, extract="number").traces[0].extracted == "77777777"
    assert run(loop_ngram=4, extract="boxed").traces[0].extracted == ""
    assert run(loop_ngram=4, extract=lambda text: f"n={len(text)}").answer == "n=8"


# ---- streaming -----------------------------------------------------------------------------------

def test_reason_stream_yields_events_and_returns_the_result(qwen):
    options = dict(n=2, think_budget=12, answer_budget=6, temperature=1.0, seed=5,
                   raw_prompt=True, **FAST)
    stream = qwen.reason_stream(QWEN_THINKING_PROMPT, **options)
    events = []
    gen = iter(stream)
    while True:
        try:
            events.append(next(gen))
        except StopIteration as stop:
            result = stop.value
            break
    assert isinstance(result, reason.Result) and stream.result is result
    assert events and all(isinstance(e, reason.Event) for e in events)
    assert {e.phase for e in events} <= {"thinking", "answer"}
    for t in result.traces:
        for phase, text in (("thinking", t.thinking), ("answer", t.answer)):
            assert "".join(e.text for e in events if (e.trace, e.phase) == (t.index, phase)) == text
    direct = qwen.reason(QWEN_THINKING_PROMPT, **options)
    assert all(same_trace(x, y) for x, y in zip(result.traces, direct.traces))

    def collect():
        return (yield from qwen.reason_stream(QWEN_THINKING_PROMPT, **options))
    gen = collect()
    assert list(gen)  # the events, then StopIteration carries the result

    # .result alone runs the stream to its end; on_text given here runs on the worker thread
    threads = set()
    stream = qwen.reason_stream(QWEN_THINKING_PROMPT, **options,
                                on_text=lambda *a: threads.add(threading.get_ident()))
    assert all(same_trace(x, y) for x, y in zip(stream.result.traces, direct.traces))
    assert threads and threading.get_ident() not in threads


def test_reason_stream_early_exit_and_errors(qwen):
    with reason.Context(qwen, n_ctx=4096, n_seq_max=3, n_outputs_max=2, n_threads=1) as ctx:
        stream = qwen.reason_stream(QWEN_THINKING_PROMPT, n=2, think_budget=1000,
                                    min_think=1000, answer_budget=10, raw_prompt=True,
                                    context=ctx)
        for event in stream:
            break  # leaving the loop stops the run and waits for the worker
        stream.close()
        assert not stream._thread.is_alive()
        assert all(ctx.seq_length(s) == 0 for s in range(3))
        with pytest.raises(RuntimeError):
            stream.result

        def on_text(trace, phase, text):
            raise Boom("stream")
        with pytest.raises(Boom):
            for _ in qwen.reason_stream(QWEN_THINKING_PROMPT, n=2, think_budget=10,
                                        raw_prompt=True, context=ctx, on_text=on_text):
                pass
        with pytest.raises(reason.ReasonError):  # the run's own errors come from the iteration
            list(qwen.reason_stream(QWEN_THINKING_PROMPT, n=3, raw_prompt=True, context=ctx))
    with pytest.raises(reason.ReasonError):  # argument errors at the call
        qwen.reason_stream("q", thinking="sometimes")


# ---- invalid arguments ---------------------------------------------------------------------------

@pytest.mark.parametrize("options", [
    dict(n=0), dict(n=-1), dict(n=1.5), dict(thinking="sometimes"), dict(effort="extreme"),
    dict(vote="loudest"), dict(extract="first"), dict(loop_action="panic"),
    dict(think_budget=-5), dict(min_think=-1), dict(answer_budget=-2), dict(think_budget="10"),
    dict(extract="regex:("), dict(share=1.5), dict(keep_percent=101.0), dict(confidence_window=0),
    dict(loop_ngram=4, loop_repeats=1), dict(prune=True, prune_warmup=0), dict(stop=[""]),
    dict(system="a\0b"), dict(top_p=0.0),
])
def test_invalid_arguments_raise_reason_error(qwen, options):
    with pytest.raises(reason.ReasonError) as info:
        qwen.reason("What is 2 + 3?", answer_budget=options.pop("answer_budget", 2),
                    think_budget=options.pop("think_budget", 2), **FAST, **options)
    assert info.value.status == _ffi.REASON_ERR_INVALID_ARG
    assert isinstance(info.value, ValueError)


def test_non_str_question(qwen):
    with pytest.raises(reason.ReasonError):
        qwen.reason(None)
    with pytest.raises(TypeError):
        qwen.reason("q", no_such_option=1)
