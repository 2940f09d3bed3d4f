"""ctypes declarations, one to one with include/reason.h.

Every constant, struct and function of the header is declared here with its argtypes and restype;
``lib`` is the loaded library (see ``reason._loader`` for where it is looked for). Nothing here
checks statuses: that is ``reason.errors``' job.
"""

from ctypes import POINTER, Structure, c_char, c_char_p, c_float, c_int8, c_int32, c_size_t
from ctypes import c_uint32, c_uint64, c_void_p

from . import _loader

lib = _loader.load()

# ---- version -------------------------------------------------------------------------------------
REASON_VERSION_MAJOR = 0
REASON_VERSION_MINOR = 1
REASON_VERSION_PATCH = 0

# ---- enum reason_status_code ---------------------------------------------------------------------
REASON_OK = 0
REASON_ERR_INVALID_ARG = 1
REASON_ERR_IO = 2
REASON_ERR_FORMAT = 3
REASON_ERR_UNSUPPORTED = 4
REASON_ERR_NOMEM = 5
REASON_ERR_BUFFER = 6
REASON_ERR_CONTEXT_FULL = 7
REASON_ERR_DEVICE = 8
REASON_ERR_TEMPLATE = 9
REASON_ERR_INTERNAL = 10

# ---- enum reason_tokenize_flags ------------------------------------------------------------------
REASON_TOKENIZE_ADD_SPECIAL = 1
REASON_TOKENIZE_PARSE_SPECIAL = 2

# ---- enum reason_special_token -------------------------------------------------------------------
REASON_SPECIAL_BOS = 0
REASON_SPECIAL_EOS = 1
REASON_SPECIAL_EOT = 2
REASON_SPECIAL_PAD = 3
REASON_SPECIAL_THINK_BEGIN = 4
REASON_SPECIAL_THINK_END = 5

# ---- enum reason_template_kind -------------------------------------------------------------------
REASON_TEMPLATE_AUTO = 0
REASON_TEMPLATE_CHATML = 1
REASON_TEMPLATE_QWEN3 = 2
REASON_TEMPLATE_DEEPSEEK_R1 = 3
REASON_TEMPLATE_LLAMA3 = 4
REASON_TEMPLATE_SMOLLM2 = 5

# ---- enum reason_kv_type -------------------------------------------------------------------------
REASON_KV_F16 = 0
REASON_KV_F32 = 1
REASON_KV_BF16 = 2

# ---- enum reason_sampler_stage -------------------------------------------------------------------
REASON_STAGE_PENALTIES = 0
REASON_STAGE_TOP_K = 1
REASON_STAGE_TOP_P = 2
REASON_STAGE_MIN_P = 3
REASON_STAGE_TEMPERATURE = 4

REASON_MAX_LOGPROBS = 20

# ---- types ---------------------------------------------------------------------------------------
reason_status = c_int32
reason_token = c_int32

# Opaque handles are plain void pointers (None for NULL).
reason_model_p = c_void_p
reason_tokenizer_p = c_void_p
reason_detokenizer_p = c_void_p
reason_context_p = c_void_p
reason_sampler_p = c_void_p


class reason_model_params(Structure):
    _fields_ = [("n_threads", c_int32), ("reserved", c_int32 * 7)]


class reason_model_info(Structure):
    _fields_ = [
        ("architecture", c_char * 32),
        ("name", c_char * 128),
        ("n_vocab", c_int32),
        ("n_ctx_train", c_int32),
        ("n_embd", c_int32),
        ("n_layer", c_int32),
        ("n_head", c_int32),
        ("n_head_kv", c_int32),
        ("head_dim", c_int32),
        ("n_ff", c_int32),
        ("n_params", c_uint64),
        ("weight_bytes", c_uint64),
    ]


class reason_chat_message(Structure):
    _fields_ = [("role", c_char_p), ("content", c_char_p)]


class reason_chat_params(Structure):
    _fields_ = [
        ("template_kind", c_int32),
        ("add_generation_prompt", c_int32),
        ("enable_thinking", c_int32),
        ("reserved", c_int32 * 5),
    ]


class reason_context_params(Structure):
    _fields_ = [
        ("n_ctx", c_uint32),
        ("n_seq_max", c_uint32),
        ("n_batch", c_uint32),
        ("n_threads", c_int32),
        ("kv_type", c_int32),
        ("kv_block_size", c_int32),
        ("n_outputs_max", c_int32),
        ("reserved", c_int32 * 5),
    ]


class reason_batch(Structure):
    _fields_ = [
        ("n_tokens", c_int32),
        ("tokens", POINTER(reason_token)),
        ("pos", POINTER(c_int32)),
        ("seq_id", POINTER(c_int32)),
        ("want_logits", POINTER(c_int8)),
    ]


class reason_context_stats(Structure):
    _fields_ = [
        ("kv_slots_total", c_uint64),
        ("kv_slots_used", c_uint64),
        ("kv_slots_peak", c_uint64),
        ("kv_bytes", c_uint64),
        ("tokens_evaluated", c_uint64),
    ]


class reason_sampler_params(Structure):
    _fields_ = [
        ("temperature", c_float),
        ("top_k", c_int32),
        ("top_p", c_float),
        ("min_p", c_float),
        ("repeat_penalty", c_float),
        ("presence_penalty", c_float),
        ("frequency_penalty", c_float),
        ("penalty_last_n", c_int32),
        ("seed", c_uint64),
        ("n_logprobs", c_int32),
        ("n_order", c_int32),
        ("order", c_int32 * 8),
        ("reserved", c_int32 * 4),
    ]


class reason_token_choice(Structure):
    _fields_ = [
        ("token", reason_token),
        ("logprob", c_float),
        ("n_top", c_int32),
        ("top_tokens", reason_token * REASON_MAX_LOGPROBS),
        ("top_logprobs", c_float * REASON_MAX_LOGPROBS),
    ]


# ---- functions -----------------------------------------------------------------------------------
def _declare(name, restype, *argtypes):
    fn = getattr(lib, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)
    return fn


_P = POINTER
_size_p = _P(c_size_t)

# Status and errors
reason_last_error = _declare("reason_last_error", c_char_p)
reason_status_name = _declare("reason_status_name", c_char_p, reason_status)
reason_version = _declare("reason_version", c_char_p)

# Models
reason_model_params_default = _declare("reason_model_params_default", None, _P(reason_model_params))
reason_model_load = _declare("reason_model_load", reason_status,
                             c_char_p, _P(reason_model_params), _P(reason_model_p))
reason_model_free = _declare("reason_model_free", None, reason_model_p)
reason_model_get_info = _declare("reason_model_get_info", reason_status,
                                 reason_model_p, _P(reason_model_info))
reason_model_meta_string = _declare("reason_model_meta_string", reason_status,
                                    reason_model_p, c_char_p, c_char_p, c_size_t, _size_p)

# Tokenizer
reason_model_tokenizer = _declare("reason_model_tokenizer", reason_status,
                                  reason_model_p, _P(reason_tokenizer_p))
reason_tokenizer_load = _declare("reason_tokenizer_load", reason_status,
                                 c_char_p, _P(reason_tokenizer_p))
reason_tokenizer_free = _declare("reason_tokenizer_free", None, reason_tokenizer_p)
reason_tokenize = _declare("reason_tokenize", reason_status,
                           reason_tokenizer_p, c_char_p, c_size_t, c_int32,
                           _P(reason_token), c_size_t, _size_p)
reason_token_to_bytes = _declare("reason_token_to_bytes", reason_status,
                                 reason_tokenizer_p, reason_token, c_char_p, c_size_t, _size_p)
reason_detokenize = _declare("reason_detokenize", reason_status,
                             reason_tokenizer_p, _P(reason_token), c_size_t, c_int32,
                             c_char_p, c_size_t, _size_p)
reason_tokenizer_n_vocab = _declare("reason_tokenizer_n_vocab", c_int32, reason_tokenizer_p)
reason_tokenizer_special = _declare("reason_tokenizer_special", reason_token,
                                    reason_tokenizer_p, c_int32)
reason_token_is_end = _declare("reason_token_is_end", c_int32, reason_tokenizer_p, reason_token)
reason_tokenizer_find = _declare("reason_tokenizer_find", reason_token,
                                 reason_tokenizer_p, c_char_p)

# Streaming detokenizer
reason_detokenizer_create = _declare("reason_detokenizer_create", reason_status,
                                     reason_tokenizer_p, _P(reason_detokenizer_p))
reason_detokenizer_push = _declare("reason_detokenizer_push", reason_status,
                                   reason_detokenizer_p, reason_token, c_char_p, c_size_t, _size_p)
reason_detokenizer_flush = _declare("reason_detokenizer_flush", reason_status,
                                    reason_detokenizer_p, c_char_p, c_size_t, _size_p)
reason_detokenizer_free = _declare("reason_detokenizer_free", None, reason_detokenizer_p)

# Chat templates
reason_chat_params_default = _declare("reason_chat_params_default", None, _P(reason_chat_params))
reason_chat_detect = _declare("reason_chat_detect", reason_status, c_char_p, _P(c_int32))
reason_chat_apply = _declare("reason_chat_apply", reason_status,
                             reason_model_p, _P(reason_chat_message), c_size_t,
                             _P(reason_chat_params), c_char_p, c_size_t, _size_p)

# Contexts, sequences and decoding
reason_context_params_default = _declare("reason_context_params_default", None,
                                         _P(reason_context_params))
reason_context_create = _declare("reason_context_create", reason_status,
                                 reason_model_p, _P(reason_context_params), _P(reason_context_p))
reason_context_free = _declare("reason_context_free", None, reason_context_p)
reason_decode = _declare("reason_decode", reason_status, reason_context_p, _P(reason_batch))
reason_get_logits = _declare("reason_get_logits", reason_status,
                             reason_context_p, c_int32, _P(_P(c_float)))
reason_seq_length = _declare("reason_seq_length", reason_status,
                             reason_context_p, c_int32, _P(c_int32))
reason_seq_truncate = _declare("reason_seq_truncate", reason_status,
                               reason_context_p, c_int32, c_int32)
reason_seq_free = _declare("reason_seq_free", reason_status, reason_context_p, c_int32)
reason_seq_fork = _declare("reason_seq_fork", reason_status, reason_context_p, c_int32, c_int32)
reason_context_get_stats = _declare("reason_context_get_stats", reason_status,
                                    reason_context_p, _P(reason_context_stats))

# Sampling
reason_sampler_params_default = _declare("reason_sampler_params_default", None,
                                         _P(reason_sampler_params))
reason_sampler_create = _declare("reason_sampler_create", reason_status,
                                 _P(reason_sampler_params), c_int32, _P(reason_sampler_p))
reason_sampler_free = _declare("reason_sampler_free", None, reason_sampler_p)
reason_sampler_sample = _declare("reason_sampler_sample", reason_status,
                                 reason_sampler_p, _P(c_float), _P(reason_token_choice))
reason_sampler_accept = _declare("reason_sampler_accept", reason_status,
                                 reason_sampler_p, reason_token)
reason_sampler_reset = _declare("reason_sampler_reset", None, reason_sampler_p)

__all__ = [n for n in dir() if n.startswith(("reason_", "REASON_"))] + ["lib"]

# Catches a header/library mismatch early rather than as memory corruption later.
_lib_version = reason_version().decode()
if _lib_version.split(".")[0] != str(REASON_VERSION_MAJOR):
    raise ImportError(f"reason: library version {_lib_version} does not match the binding "
                      f"({REASON_VERSION_MAJOR}.{REASON_VERSION_MINOR}.{REASON_VERSION_PATCH})")
