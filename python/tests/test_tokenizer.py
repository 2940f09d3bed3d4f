"""Tokenizer: encode against the fixtures and the `tokenizers` package, decode, streaming."""

import glob
import json
import os

import pytest

import reason

from conftest import MODELS_DIR, TOKENIZERS_DIR

SAMPLES = [
    "Hello world",
    "What is 17 * 23? Think step by step.",
    "  leading spaces and\ttabs\n\nnew lines\r\n",
    "numbers 1234567 and 3.14159, dates 2024-05-17",
    "def f(x):\n    return x ** 2  # square\n",
    "naïve café — “quotes”, 日本語のテキスト, 한국어, emoji 🤖🧠!",
    "<|im_start|>user\nhi<|im_end|>\n",
    "<think>\nLet me think.\n</think>\n\nThe answer is 391.",
]


def _case_files():
    return sorted(glob.glob(os.path.join(MODELS_DIR, "*-tokenizer-cases.json")))


@pytest.mark.parametrize("cases_path", _case_files(), ids=os.path.basename)
def test_fixture_cases(cases_path):
    with open(cases_path) as f:
        cases = json.load(f)
    tok = reason.Tokenizer.from_file(os.path.join(MODELS_DIR, cases["tokenizer"]))
    for case in cases["cases"]:
        ids = tok.encode(case["text"], add_special=cases["add_special_tokens"],
                         parse_special=cases["parse_special"])
        assert ids == case["ids"], case["text"]


def _shared_tokenizers():
    return sorted(glob.glob(os.path.join(TOKENIZERS_DIR, "*", "tokenizer.json")))


@pytest.mark.skipif(not _shared_tokenizers(), reason="no tokenizers under $REASON_SHARED_DATA")
@pytest.mark.parametrize("path", _shared_tokenizers(),
                         ids=lambda p: os.path.basename(os.path.dirname(p)))
def test_matches_hf_tokenizers(path):
    hf_tokenizers = pytest.importorskip("tokenizers")
    try:
        tok = reason.Tokenizer.from_file(os.path.dirname(path))  # a folder works too
    except reason.ReasonError as e:
        if e.status == reason._ffi.REASON_ERR_UNSUPPORTED:
            pytest.skip(str(e))
        raise
    hf = hf_tokenizers.Tokenizer.from_file(path)
    for text in SAMPLES:
        assert tok.encode(text) == hf.encode(text, add_special_tokens=False).ids, text


@pytest.fixture(scope="module")
def qwen3_tok():
    path = os.path.join(TOKENIZERS_DIR, "qwen3", "tokenizer.json")
    if not os.path.exists(path):
        pytest.skip("no qwen3 tokenizer under $REASON_SHARED_DATA")
    return reason.Tokenizer.from_file(path)


def test_decode_round_trip(qwen3_tok):
    for text in SAMPLES:
        ids = qwen3_tok.encode(text)
        assert qwen3_tok.decode(ids, render_special=True) == text
        assert "".join(qwen3_tok.token_bytes(t).decode("utf-8", "replace") for t in ids)


def test_special_tokens(qwen3_tok):
    im_end = qwen3_tok.find("<|im_end|>")
    assert im_end is not None and qwen3_tok.is_end(im_end)
    assert qwen3_tok.eot == im_end
    assert qwen3_tok.special("think_begin") == qwen3_tok.find("<think>")
    assert qwen3_tok.find("no such token text") is None
    assert not qwen3_tok.is_end(qwen3_tok.encode("Hello")[0])
    assert qwen3_tok.decode([im_end]) == ""  # special tokens left out by default
    assert qwen3_tok.decode([im_end], render_special=True) == "<|im_end|>"
    assert qwen3_tok.encode("<|im_end|>", parse_special=False) != [im_end]
    assert qwen3_tok.n_vocab > 150000


def test_encode_bytes_and_errors(qwen3_tok):
    assert qwen3_tok.encode("héllo".encode()) == qwen3_tok.encode("héllo")
    assert qwen3_tok.encode("") == []
    with pytest.raises(reason.InvalidArgumentError) as info:
        qwen3_tok.encode(b"ab\xffcd")  # invalid UTF-8: the byte offset is named
    assert "2" in str(info.value)
    with pytest.raises(reason.ReasonError):
        qwen3_tok.encode(None)
    with pytest.raises(reason.ReasonError):
        qwen3_tok.decode([-1])


def test_long_text_grows_buffers(qwen3_tok):
    text = "word " * 5000 + "🤖" * 1000
    ids = qwen3_tok.encode(text)
    assert len(ids) > 1000
    assert qwen3_tok.decode(ids) == text


def test_streaming_detokenizer_holds_split_characters(qwen3_tok):
    text = "𓀀 hieroglyph 龘"  # both characters are split across 2-3 byte tokens
    ids = qwen3_tok.encode(text)
    detok = qwen3_tok.detokenizer()
    pieces = [detok.push(t) for t in ids] + [detok.flush()]
    assert "".join(pieces) == text
    assert pieces[:3] == ["", "", "𓀀"]  # held back until the character's last byte
    # A dangling partial character comes out as U+FFFD on flush.
    partial = qwen3_tok.encode("龘")
    detok = qwen3_tok.detokenizer()
    assert detok.push(partial[0]) == "" and detok.flush() == "\ufffd"
