"""Sampler: determinism, greedy, log-probabilities, penalties, options."""

import math

import pytest

import reason
from reason import _ffi

np = pytest.importorskip("numpy")

N_VOCAB = 1000


def _logits(seed=0):
    return np.random.default_rng(seed).normal(0, 3, N_VOCAB).astype(np.float32)


def _draw(sampler, n=50):
    out = []
    for step in range(n):
        choice = sampler.sample(_logits(step))
        sampler.accept(choice.token)
        out.append(choice.token)
    return out


def test_same_seed_same_tokens():
    options = dict(temperature=1.0, top_k=0, top_p=1.0, seed=1234)
    first = _draw(reason.Sampler(n_vocab=N_VOCAB, **options))
    assert first == _draw(reason.Sampler(n_vocab=N_VOCAB, **options))
    assert first != _draw(reason.Sampler(n_vocab=N_VOCAB, **dict(options, seed=99)))
    sampler = reason.Sampler(n_vocab=N_VOCAB, **options)
    _draw(sampler, 10)
    sampler.reset()
    assert _draw(sampler) == first


def test_greedy_and_logprobs():
    logits = _logits()
    sampler = reason.Sampler(temperature=0, n_logprobs=5)  # n_vocab from the first logits
    choice = sampler.sample(logits)
    assert isinstance(choice, reason.TokenChoice)
    assert choice.token == int(np.argmax(logits))
    log_softmax = logits - (np.max(logits) + np.log(np.sum(np.exp(logits - np.max(logits)))))
    assert math.isclose(choice.logprob, log_softmax[choice.token], abs_tol=1e-4)
    assert [t for t, _ in choice.top] == list(np.argsort(-logits)[:5])
    for token, logprob in choice.top:
        assert math.isclose(logprob, log_softmax[token], abs_tol=1e-4)
    # A plain list of floats works too.
    assert sampler.sample([float(x) for x in logits]).token == choice.token


def test_penalties_change_the_choice():
    logits = np.zeros(N_VOCAB, dtype=np.float32)
    logits[7], logits[8] = 2.0, 1.5
    sampler = reason.Sampler(temperature=0, repeat_penalty=2.0, n_vocab=N_VOCAB)
    assert sampler.sample(logits).token == 7
    sampler.accept(7)
    assert sampler.sample(logits).token == 8


def test_order_and_top_k():
    logits = _logits(3)
    best = set(np.argsort(-logits)[:3].tolist())
    sampler = reason.Sampler(temperature=5.0, top_k=3, top_p=1.0, seed=5, n_vocab=N_VOCAB,
                             order=["penalties", "top_k", "temperature"])
    assert {sampler.sample(logits).token for _ in range(50)} <= best


def test_bad_options_and_inputs():
    with pytest.raises(reason.ReasonError) as info:
        reason.Sampler(top_p=2.0, n_vocab=N_VOCAB)
    assert info.value.status == _ffi.REASON_ERR_INVALID_ARG
    with pytest.raises(reason.ReasonError):
        reason.Sampler(n_logprobs=_ffi.REASON_MAX_LOGPROBS + 1, n_vocab=N_VOCAB)
    with pytest.raises(TypeError):
        reason.Sampler(temprature=1.0)
    sampler = reason.Sampler(n_vocab=N_VOCAB)
    with pytest.raises(ValueError):
        sampler.sample(np.zeros(N_VOCAB - 1, dtype=np.float32))  # C cannot check the length
    with pytest.raises(reason.InvalidArgumentError):
        sampler.accept(N_VOCAB)
    sampler.close()
    with pytest.raises(reason.InvalidArgumentError):
        sampler.sample(_logits())
