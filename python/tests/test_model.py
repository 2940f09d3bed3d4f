"""Model and Context against the tiny fixtures' reference logits and greedy ids."""

import pytest

import reason
from reason import _ffi

from conftest import MODELS_DIR, load_reference, model_fixtures

np = pytest.importorskip("numpy")

FIXTURES = model_fixtures()
if not FIXTURES:
    pytest.skip("no model fixtures in tests/data/models", allow_module_level=True)


def _model(name):
    return reason.Model(f"{MODELS_DIR}/{name}.gguf")


def test_info_and_metadata(qwen3):
    info = qwen3.info
    assert info.architecture == "qwen3"
    assert (info.n_vocab, info.n_layer, info.n_head, info.n_head_kv, info.head_dim) == (
        576, 2, 4, 2, 96)
    assert info.n_params > 0 and info.weight_bytes > 0
    assert qwen3.meta("general.architecture") == "qwen3"
    assert qwen3.meta("no.such.key") is None
    assert qwen3.meta("no.such.key", "x") == "x"
    assert reason.detect_template(qwen3.chat_template) == "qwen3"
    assert qwen3.tokenizer.n_vocab == 576


@pytest.mark.parametrize("name", FIXTURES)
def test_chat_template_gives_fixture_prompt(name):
    meta, _ = load_reference(name)
    with _model(name) as model:
        messages = [{"role": "user", "content": "What is 17 * 23? Think step by step."}]
        assert model.chat(messages) == meta["prompt_text"]
        assert model.encode_prompt(messages) == meta["prompt_ids"]


def test_chat_forms_and_errors(qwen3):
    one = qwen3.chat("hi")
    assert one == qwen3.chat([("user", "hi")]) == qwen3.chat([{"role": "user", "content": "hi"}])
    assert qwen3.chat("hi", add_generation_prompt=False).endswith("<|im_end|>\n")
    assert "<think>\n\n</think>" in qwen3.chat("hi", enable_thinking=False)
    assert qwen3.chat("hi", template="chatml").startswith("<|im_start|>user")
    with pytest.raises(reason.ReasonError) as info:
        qwen3.chat([("tool", "x")])
    assert info.value.status == _ffi.REASON_ERR_TEMPLATE
    with pytest.raises(reason.ReasonError) as info:
        qwen3.chat([("user", None)])
    assert info.value.status == _ffi.REASON_ERR_INVALID_ARG


def test_chat_harmony(qwen3):
    import datetime
    prompt = qwen3.chat([("system", "Be brief."), ("user", "hi")], template="harmony",
                        reasoning_effort="high", current_date=datetime.date(2025, 6, 28))
    assert prompt == (
        "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n"
        "Knowledge cutoff: 2024-06\nCurrent date: 2025-06-28\n\nReasoning: high\n\n"
        "# Valid channels: analysis, commentary, final. Channel must be included for every "
        "message.<|end|><|start|>developer<|message|># Instructions\n\nBe brief.<|end|>"
        "<|start|>user<|message|>hi<|end|><|start|>assistant")
    assert "Current date" not in qwen3.chat("hi", template="harmony", current_date=-1)
    assert reason.detect_template("<|start|>{{ x }}<|channel|>final<|message|>") == "harmony"
    with pytest.raises(reason.ReasonError) as info:
        qwen3.chat("hi", template="harmony", reasoning_effort="xhigh")
    assert info.value.status == _ffi.REASON_ERR_TEMPLATE


def _relative_error(got, ref):
    return float(np.max(np.abs(got - ref)) / np.max(np.abs(ref)))


@pytest.mark.parametrize("name", FIXTURES)
@pytest.mark.parametrize("weights", ["auto", "copied"])
def test_logits_match_reference(name, weights):
    meta, ref = load_reference(name)
    ids = meta["prompt_ids"] + meta["greedy_ids"]
    model = reason.Model(f"{MODELS_DIR}/{name}.gguf", weights=weights)
    with model, reason.Context(model, n_ctx=256, n_seq_max=1, n_outputs_max=len(ids)) as ctx:
        ctx.decode(ids, 0, logits=True)
        got = np.stack([ctx.logits(i) for i in range(len(ids))])
        assert got.dtype == np.float32 and got.shape == ref.shape
        assert _relative_error(got, ref) <= 1e-2
        assert np.array_equal(ctx.logits(-1), got[-1])


def test_weights_option_checked():
    with pytest.raises(ValueError):
        reason.Model(f"{MODELS_DIR}/{FIXTURES[0]}.gguf", weights="swapped")


@pytest.mark.parametrize("name", FIXTURES)
def test_greedy_generation(name):
    meta, _ = load_reference(name)
    with _model(name) as model:
        ids = [c.token for c in model.generate_tokens(meta["prompt_ids"], max_tokens=16,
                                                      temperature=0)]
    assert ids == meta["greedy_ids"]


def test_fast_precision_close_to_reference(qwen3):
    # the qwen3-F16 fixture has no integer-type weights: "fast" must then equal "exact"
    meta, ref = load_reference("qwen3-F16")
    ids = meta["prompt_ids"]
    outs = []
    for precision in ("exact", "fast"):
        with reason.Context(qwen3, n_ctx=128, kv_type="f32", precision=precision) as ctx:
            ctx.decode(ids, 0)
            outs.append(ctx.logits(-1))
            assert _relative_error(outs[-1], ref[len(ids) - 1]) <= 1e-4
    with pytest.raises(reason.InvalidArgumentError):
        reason.Context(qwen3, precision=5)


def test_incremental_decode_matches_one_batch(qwen3):
    meta, ref = load_reference("qwen3-F16")
    ids = meta["prompt_ids"]
    with reason.Context(qwen3, n_ctx=128, n_seq_max=2, kv_type="f32") as ctx:
        ctx.decode(ids[:10], 0)
        ctx.decode(ids[10:], 10, logits=[i % 2 == 0 for i in range(len(ids) - 10)])
        assert _relative_error(ctx.logits(0), ref[10]) <= 1e-4
        with pytest.raises(reason.InvalidArgumentError):
            ctx.logits(1)  # did not ask for it
        with pytest.raises(reason.InvalidArgumentError):
            ctx.logits(10_000)


def test_sequences_fork_truncate_free_and_stats(qwen3):
    ids = qwen3.encode_prompt("What is 17 * 23?")
    n = len(ids)
    with reason.Context(qwen3, n_ctx=256, n_seq_max=4, kv_type="f32") as ctx:
        ctx.decode(ids, 0, seq_ids=0)
        base = ctx.logits()
        assert ctx.seq_length(0) == n and ctx.seq_length(1) == 0
        ctx.seq_fork(0, 1)
        assert ctx.seq_length(1) == n
        # Two sequences in one batch: each continues its own state.
        ctx.decode([100, 200], [n, n], seq_ids=[0, 1], logits=True)
        a, b = ctx.logits(0), ctx.logits(1)
        assert not np.allclose(a, b)
        ctx.seq_truncate(1, n)
        ctx.decode([100], n, seq_ids=1)
        assert np.allclose(ctx.logits(), a, atol=1e-5)
        ctx.seq_truncate(0, n - 1)
        ctx.decode([ids[-1]], n - 1, seq_ids=0)
        assert np.allclose(ctx.logits(), base, atol=1e-5)
        stats = ctx.stats()
        assert stats.kv_slots_used >= n and stats.kv_slots_total >= 256
        assert stats.kv_slots_peak >= stats.kv_slots_used and stats.kv_bytes > 0
        assert stats.tokens_evaluated == n + 2 + 1 + 1
        ctx.seq_free(1)
        assert ctx.seq_length(1) == 0
        with pytest.raises(reason.InvalidArgumentError):
            ctx.seq_length(4)
        with pytest.raises(reason.InvalidArgumentError):
            ctx.decode([1], 5, seq_ids=0)  # positions must continue the sequence


def test_context_full_raises_and_keeps_state(qwen3):
    with reason.Context(qwen3, n_ctx=32, n_seq_max=1, kv_block_size=16) as ctx:
        ctx.decode(list(range(20)), 0)
        with pytest.raises(reason.ContextFullError) as info:
            ctx.decode(list(range(20)), 20)
        assert info.value.status == _ffi.REASON_ERR_CONTEXT_FULL
        assert info.value.name == "REASON_ERR_CONTEXT_FULL"
        assert ctx.seq_length(0) == 20  # nothing of the failed batch was kept
        ctx.decode(list(range(12)), 20)
        assert ctx.seq_length(0) == 32


def test_q8_kv_close_to_reference(qwen3):
    # the 8-bit KV cache: within its rounding (8 bits per 32 values) of transformers' logits,
    # one batch and token by token, and further from them than the f16 cache
    meta, ref = load_reference("qwen3-F16")
    ids = meta["prompt_ids"]
    errs = {}
    for kv in ("f16", "q8"):
        with reason.Context(qwen3, n_ctx=128, n_seq_max=2, kv_type=kv) as ctx:
            ctx.decode(ids, 0)
            errs[kv] = _relative_error(ctx.logits(-1), ref[len(ids) - 1])
            for i, tok in enumerate(ids):  # the decode path, in a second sequence
                ctx.decode([tok], i, seq_ids=1)
            assert _relative_error(ctx.logits(-1), ref[len(ids) - 1]) <= 5e-2
    assert errs["q8"] <= 5e-2
    assert errs["f16"] < errs["q8"]


def test_context_options(qwen3):
    for kv in ("f16", "f32", "bf16", "q8"):
        with reason.Context(qwen3, n_ctx=64, n_seq_max=1, kv_type=kv, n_threads=1) as ctx:
            ctx.decode([1, 2, 3], 0)
            assert ctx.logits().shape == (576,)
    with pytest.raises(KeyError):
        reason.Context(qwen3, kv_type="q4")
    with pytest.raises(reason.InvalidArgumentError):
        reason.Context(qwen3, n_ctx=0)
