"""generate(): streaming text, stopping, sampling options, reuse of a context."""

import pytest

import reason

PROMPT = "What is 17 * 23? Think step by step."


def test_stream_concatenation_equals_text(qwen3):
    options = dict(max_tokens=40, temperature=0.8, top_k=0, top_p=1.0, seed=7)
    pieces = list(qwen3.generate(PROMPT, **options))
    assert pieces and all(isinstance(p, str) and p for p in pieces)
    for piece in pieces:
        piece.encode("utf-8")  # no lone surrogates: each piece is valid UTF-8
    assert "".join(pieces) == qwen3.generate_text(PROMPT, **options)
    assert "".join(pieces) == "".join(qwen3.generate(PROMPT, stream=True, **options))
    assert qwen3.generate(PROMPT, stream=False, **options) == "".join(pieces)


def test_text_matches_tokens(qwen3):
    tokens = [c.token for c in qwen3.generate_tokens(PROMPT, max_tokens=16, temperature=0)]
    detok = qwen3.tokenizer.detokenizer()
    text = "".join(detok.push(t) for t in tokens) + detok.flush()
    assert qwen3.generate_text(PROMPT, max_tokens=16, temperature=0) == text
    assert len(tokens) == 16


def test_prompt_forms(qwen3):
    by_text = qwen3.generate_text(PROMPT, max_tokens=8, temperature=0)
    ids = qwen3.encode_prompt(PROMPT)
    assert qwen3.generate_text(ids, max_tokens=8, temperature=0) == by_text
    messages = [{"role": "user", "content": PROMPT}]
    assert qwen3.generate_text(messages, max_tokens=8, temperature=0) == by_text
    raw = qwen3.generate_text("Hello", chat=False, max_tokens=4, temperature=0)
    assert isinstance(raw, str)
    assert qwen3.generate_text(PROMPT, max_tokens=0) == ""


class _EndAfter:
    """A sampler that picks the end-of-turn token on its n-th call."""

    def __init__(self, model, n):
        self.inner = reason.Sampler(temperature=0, n_vocab=model)
        self.end = model.tokenizer.eot
        self.calls = 0

    def sample(self, logits):
        self.calls += 1
        choice = self.inner.sample(logits)
        return reason.TokenChoice(self.end, 0.0) if self.calls == 4 else choice

    def accept(self, token):
        self.inner.accept(token)


def test_stops_at_end_of_generation(qwen3):
    sampler = _EndAfter(qwen3, 4)
    tokens = list(qwen3.generate_tokens(PROMPT, max_tokens=50, sampler=sampler))
    assert len(tokens) == 3 and sampler.calls == 4
    assert qwen3.tokenizer.eot not in [c.token for c in tokens]


def test_generation_in_a_given_context(qwen3):
    with reason.Context(qwen3, n_ctx=256, n_seq_max=2) as ctx:
        first = qwen3.generate_text(PROMPT, max_tokens=6, temperature=0, context=ctx, seq=1)
        n = ctx.seq_length(1)
        assert n == len(qwen3.encode_prompt(PROMPT)) + 5  # the last token is not decoded
        assert ctx.seq_length(0) == 0
        ctx.seq_free(1)
        again = qwen3.generate_text(PROMPT, max_tokens=6, temperature=0, context=ctx, seq=1)
        assert again == first


def test_context_full_during_generation(qwen3):
    n_prompt = len(qwen3.encode_prompt(PROMPT))
    with pytest.raises(reason.ContextFullError):
        qwen3.generate_text(PROMPT, max_tokens=200, temperature=0, n_ctx=n_prompt + 16)


def test_logprobs_in_choices(qwen3):
    choices = list(qwen3.generate_tokens(PROMPT, max_tokens=4, temperature=0, n_logprobs=3))
    for c in choices:
        assert len(c.top) == 3 and c.top[0][0] == c.token and c.logprob <= 0
