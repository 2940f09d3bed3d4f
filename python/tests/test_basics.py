"""Version, library discovery, errors and NULL handling."""

import ctypes
import os
import subprocess
import sys

import pytest

import reason
from reason import _ffi

from conftest import PYTHON_DIR, REPO_DIR


def test_version():
    assert reason.version() == "%d.%d.%d" % (
        _ffi.REASON_VERSION_MAJOR, _ffi.REASON_VERSION_MINOR, _ffi.REASON_VERSION_PATCH)
    assert reason.__version__ == "0.1.0"
    assert os.path.exists(reason.library_path)


def test_status_names():
    assert _ffi.reason_status_name(_ffi.REASON_OK) == b"REASON_OK"
    assert _ffi.reason_status_name(_ffi.REASON_ERR_CONTEXT_FULL) == b"REASON_ERR_CONTEXT_FULL"
    assert _ffi.reason_last_error() is not None


@pytest.mark.parametrize("load", [reason.Model, reason.Tokenizer.from_file, reason.Tokenizer])
def test_missing_file_is_io_error(tmp_path, load):
    missing = str(tmp_path / "no-such-file.gguf")
    with pytest.raises(reason.ReasonError) as info:
        load(missing)
    err = info.value
    assert err.status == _ffi.REASON_ERR_IO
    assert err.name == "REASON_ERR_IO"
    assert isinstance(err, reason.ReasonIOError) and isinstance(err, OSError)
    assert missing in str(err)


def test_malformed_file_is_format_error(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00\x01")  # version 3, then truncated
    with pytest.raises(reason.ReasonError) as info:
        reason.Model(str(bad))
    assert info.value.status == _ffi.REASON_ERR_FORMAT
    assert str(bad) in str(info.value)


def test_none_arguments_raise_not_crash():
    for call in (lambda: reason.Model(None), lambda: reason.Tokenizer.from_file(None),
                 lambda: reason.detect_template(None)):
        with pytest.raises(reason.ReasonError) as info:
            call()
        assert info.value.status == _ffi.REASON_ERR_INVALID_ARG


def test_handles_are_not_paths():
    # a wrong object where a C address is expected is a TypeError, not a free() of garbage
    for cls in (reason.Context, reason.Sampler):
        with pytest.raises(TypeError):
            reason._handle.Handle.__init__(object.__new__(cls), "not/a/handle")
    with pytest.raises(TypeError):
        reason.Tokenizer(3.5)


def test_null_handles_in_the_c_api():
    """Every fallible entry point answers NULL handles with REASON_ERR_INVALID_ARG."""
    n = ctypes.c_size_t()
    i32 = ctypes.c_int32()
    buf = ctypes.create_string_buffer(8)
    calls = {
        "model_load": lambda: _ffi.reason_model_load(None, None, None),
        "model_get_info": lambda: _ffi.reason_model_get_info(None, None),
        "model_meta_string": lambda: _ffi.reason_model_meta_string(None, b"k", buf, 8,
                                                                   ctypes.byref(n)),
        "model_tokenizer": lambda: _ffi.reason_model_tokenizer(None, None),
        "tokenizer_load": lambda: _ffi.reason_tokenizer_load(None, None),
        "tokenize": lambda: _ffi.reason_tokenize(None, b"a", 1, 0, None, 0, ctypes.byref(n)),
        "token_to_bytes": lambda: _ffi.reason_token_to_bytes(None, 0, buf, 8, ctypes.byref(n)),
        "detokenize": lambda: _ffi.reason_detokenize(None, None, 0, 0, buf, 8, ctypes.byref(n)),
        "detokenizer_create": lambda: _ffi.reason_detokenizer_create(None, None),
        "detokenizer_push": lambda: _ffi.reason_detokenizer_push(None, 0, buf, 8, ctypes.byref(n)),
        "detokenizer_flush": lambda: _ffi.reason_detokenizer_flush(None, buf, 8, ctypes.byref(n)),
        "chat_detect": lambda: _ffi.reason_chat_detect(None, ctypes.byref(i32)),
        "chat_apply": lambda: _ffi.reason_chat_apply(None, None, 0, None, buf, 8, ctypes.byref(n)),
        "context_create": lambda: _ffi.reason_context_create(None, None, None),
        "decode": lambda: _ffi.reason_decode(None, None),
        "get_logits": lambda: _ffi.reason_get_logits(None, 0, None),
        "seq_length": lambda: _ffi.reason_seq_length(None, 0, ctypes.byref(i32)),
        "seq_truncate": lambda: _ffi.reason_seq_truncate(None, 0, 0),
        "seq_free": lambda: _ffi.reason_seq_free(None, 0),
        "seq_fork": lambda: _ffi.reason_seq_fork(None, 0, 1),
        "context_get_stats": lambda: _ffi.reason_context_get_stats(None, None),
        "sampler_create": lambda: _ffi.reason_sampler_create(None, 10, None),
        "sampler_sample": lambda: _ffi.reason_sampler_sample(None, None, None),
        "sampler_accept": lambda: _ffi.reason_sampler_accept(None, 0),
    }
    if isinstance(_ffi.reason_run, ctypes._CFuncPtr):  # the reasoning runtime, once built
        p = ctypes.c_char_p()
        calls.update({
            "run": lambda: _ffi.reason_run(None, b"q", None, None),
            "run_prompt": lambda: _ffi.reason_run_prompt(None, b"q", None, None),
            "result_trace": lambda: _ffi.reason_result_trace(None, 0, None),
            "result_vote": lambda: _ffi.reason_result_vote(None, ctypes.byref(p), None),
            "result_answer": lambda: _ffi.reason_result_answer(None, 0, None, None, None),
            "result_usage": lambda: _ffi.reason_result_usage(None, None),
        })
    wrong = {name: int(call()) for name, call in calls.items()}
    assert {k: v for k, v in wrong.items() if v != _ffi.REASON_ERR_INVALID_ARG} == {}
    # The non-status entry points tolerate NULL too.
    assert _ffi.reason_tokenizer_n_vocab(None) == 0
    assert _ffi.reason_tokenizer_special(None, 0) == -1
    assert _ffi.reason_token_is_end(None, 0) == 0
    assert _ffi.reason_tokenizer_find(None, b"a") == -1
    for free in (_ffi.reason_model_free, _ffi.reason_tokenizer_free, _ffi.reason_detokenizer_free,
                 _ffi.reason_context_free, _ffi.reason_sampler_free, _ffi.reason_sampler_reset):
        free(None)
    if isinstance(_ffi.reason_run, ctypes._CFuncPtr):
        _ffi.reason_result_free(None)
        assert _ffi.reason_result_n_traces(None) == 0
        assert _ffi.reason_result_n_answers(None) == 0
        _ffi.reason_params_default(None)
    for default in (_ffi.reason_model_params_default, _ffi.reason_chat_params_default,
                    _ffi.reason_context_params_default, _ffi.reason_sampler_params_default):
        default(None)


def test_closed_objects_raise(qwen3_path):
    model = reason.Model(qwen3_path)
    tok = model.tokenizer
    ctx = reason.Context(model, n_ctx=64, n_seq_max=1)
    model.close()
    assert model.closed and tok.closed and ctx.closed
    for call in (lambda: model.meta("general.name"), lambda: tok.encode("hi"),
                 lambda: ctx.decode([1], 0), lambda: ctx.seq_length(0), lambda: model.chat("hi")):
        with pytest.raises(reason.ReasonError) as info:
            call()
        assert info.value.status == _ffi.REASON_ERR_INVALID_ARG
    model.close()  # idempotent


def _import_in_subprocess(env_library):
    env = dict(os.environ, REASON_LIBRARY=env_library, PYTHONPATH=PYTHON_DIR)
    return subprocess.run([sys.executable, "-c", "import reason; print(reason.library_path)"],
                          env=env, capture_output=True, text=True, cwd=REPO_DIR)


def test_env_var_wins():
    out = _import_in_subprocess(reason.library_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == reason.library_path


def test_bad_env_var_is_a_clear_import_error(tmp_path):
    out = _import_in_subprocess(str(tmp_path / "libnothing.so"))
    assert out.returncode != 0
    assert "ImportError" in out.stderr and "REASON_LIBRARY" in out.stderr
    assert "libnothing.so" in out.stderr


def test_candidates_skip_sanitizer_builds(tmp_path):
    from reason import _loader

    (tmp_path / "include").mkdir()
    (tmp_path / "include" / "reason.h").write_text("")
    for folder, body in (("build", b"plain"), ("build-asan", b"x __asan_init x"),
                         ("build-x", b"plain")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "libreason.so").write_bytes(body)
    found = _loader.repo_build_libraries(str(tmp_path))
    assert found == [str(tmp_path / "build" / "libreason.so"),
                     str(tmp_path / "build-x" / "libreason.so")]


NO_NUMPY_SCRIPT = """
import sys
sys.modules["numpy"] = None  # import numpy now fails
import array, reason
with reason.Model(sys.argv[1]) as model, reason.Context(model, n_ctx=64, n_seq_max=1) as ctx:
    ctx.decode(model.encode_prompt("hi"), 0)
    logits = ctx.logits()
    assert isinstance(logits, array.array) and len(logits) == model.info.n_vocab
    choice = reason.Sampler(temperature=0).sample(logits)
    assert choice.token == max(range(len(logits)), key=logits.__getitem__)
    print(model.generate_text("hi", max_tokens=4, temperature=0) is not None)
"""


def test_works_without_numpy(qwen3_path):
    package_parent = os.path.dirname(os.path.dirname(reason.__file__))
    env = dict(os.environ, PYTHONPATH=package_parent, REASON_LIBRARY=reason.library_path)
    out = subprocess.run([sys.executable, "-c", NO_NUMPY_SCRIPT, qwen3_path], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"
