"""ctypes declarations, one to one with include/reason.h.

Every constant, struct and function of the header is declared here with its argtypes and restype;
``lib`` is the loaded library (see ``reason._loader`` for where it is looked for). A function the
loaded library does not export (an older build) is a stub raising NotImplementedError. Nothing here
checks statuses: that is ``reason.errors``' job.
"""

from ctypes import CFUNCTYPE, POINTER, Structure, c_char, c_char_p, c_double, c_float, c_int8
from ctypes import c_int32, c_int64, c_size_t, c_uint32, c_uint64, c_void_p

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
REASON_TEMPLATE_QWEN35 = 6
REASON_TEMPLATE_HARMONY = 7
REASON_TEMPLATE_GEMMA4 = 8

# ---- enum reason_chat_effort / reason_chat_preserve ----------------------------------------------
REASON_CHAT_EFFORT_DEFAULT = 0
REASON_CHAT_EFFORT_LOW = 1
REASON_CHAT_EFFORT_MEDIUM = 2
REASON_CHAT_EFFORT_XHIGH = 3
REASON_CHAT_EFFORT_HIGH = 4
REASON_CHAT_PRESERVE_DEFAULT = 0
REASON_CHAT_PRESERVE_ON = 1
REASON_CHAT_PRESERVE_OFF = 2

# ---- enum reason_precision -----------------------------------------------------------------------
REASON_PRECISION_EXACT = 0
REASON_PRECISION_FAST = 1

# ---- enum reason_unpacked_weights -----------------------------------------------------------------
REASON_UNPACKED_KEPT = 0
REASON_UNPACKED_PER_STEP = 1

# ---- enum reason_kv_type -------------------------------------------------------------------------
REASON_KV_F16 = 0
REASON_KV_F32 = 1
REASON_KV_BF16 = 2
REASON_KV_Q8 = 3

# ---- enum reason_weights -------------------------------------------------------------------------
REASON_WEIGHTS_AUTO = 0
REASON_WEIGHTS_MAPPED = 1
REASON_WEIGHTS_COPIED = 2

# ---- enum reason_sampler_stage -------------------------------------------------------------------
REASON_STAGE_PENALTIES = 0
REASON_STAGE_TOP_K = 1
REASON_STAGE_TOP_P = 2
REASON_STAGE_MIN_P = 3
REASON_STAGE_TEMPERATURE = 4

REASON_MAX_LOGPROBS = 20

# ---- reasoning runtime enums ---------------------------------------------------------------------
REASON_PHASE_THINKING = 0
REASON_PHASE_ANSWER = 1
REASON_PHASE_DONE = 2

REASON_FINISH_NONE = 0
REASON_FINISH_END = 1
REASON_FINISH_LENGTH = 2
REASON_FINISH_STOP_STRING = 3
REASON_FINISH_LOOP = 4
REASON_FINISH_PRUNED = 5
REASON_FINISH_CANCELLED = 6
REASON_FINISH_CONTEXT_FULL = 7

REASON_EFFORT_DEFAULT = 0
REASON_EFFORT_LOW = 1
REASON_EFFORT_MEDIUM = 2
REASON_EFFORT_HIGH = 3

REASON_THINKING_AUTO = 0
REASON_THINKING_MODEL = 1
REASON_THINKING_PROMPTED = 2
REASON_THINKING_OFF = 3

REASON_EXTRACT_AUTO = 0
REASON_EXTRACT_BOXED = 1
REASON_EXTRACT_LAST_NUMBER = 2
REASON_EXTRACT_FINAL_LINE = 3
REASON_EXTRACT_REGEX = 4
REASON_EXTRACT_CALLBACK = 5

REASON_VOTE_MAJORITY = 0
REASON_VOTE_MEAN_LOGPROB = 1
REASON_VOTE_LOWEST_GROUP = 2

REASON_LOOP_END = 0
REASON_LOOP_NUDGE = 1

REASON_ACTION_CONTINUE = 0
REASON_ACTION_END_THINKING = 1
REASON_ACTION_STOP = 2

# ---- types ---------------------------------------------------------------------------------------
reason_status = c_int32
reason_token = c_int32

# Opaque handles are plain void pointers (None for NULL).
reason_model_p = c_void_p
reason_tokenizer_p = c_void_p
reason_detokenizer_p = c_void_p
reason_context_p = c_void_p
reason_sampler_p = c_void_p
reason_result_p = c_void_p


class reason_model_params(Structure):
    _fields_ = [("n_threads", c_int32), ("weights", c_int32), ("reserved", c_int32 * 6)]


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
        ("active_weight_bytes", c_uint64),
        ("n_expert", c_int32),
        ("n_expert_used", c_int32),
    ]


class reason_chat_message(Structure):
    _fields_ = [("role", c_char_p), ("content", c_char_p)]


class reason_chat_params(Structure):
    _fields_ = [
        ("template_kind", c_int32),
        ("add_generation_prompt", c_int32),
        ("enable_thinking", c_int32),
        ("preserve_thinking", c_int32),
        ("reasoning_effort", c_int32),
        ("current_date", c_int32),
        ("reserved", c_int32 * 2),
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
        ("precision", c_int32),
        ("unpacked_weights", c_int32),
        ("reserved", c_int32 * 3),
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
        ("rec_slots_total", c_uint64),
        ("rec_slots_used", c_uint64),
        ("rec_bytes", c_uint64),
        ("swa_slots_total", c_uint64),
        ("swa_slots_used", c_uint64),
        ("swa_slots_peak", c_uint64),
        ("swa_bytes", c_uint64),
        ("unpacked_weight_bytes", c_uint64),
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


# Callbacks (wrap Python functions in these types and keep them alive while the call runs).
reason_on_text_fn = CFUNCTYPE(c_int32, c_void_p, c_int32, c_int32, POINTER(c_char), c_size_t)
reason_on_token_fn = CFUNCTYPE(c_int32, c_void_p, c_int32, c_int32, POINTER(reason_token_choice))
reason_extract_fn = CFUNCTYPE(c_size_t, c_void_p, POINTER(c_char), c_size_t, POINTER(c_char),
                              c_size_t)


class reason_callbacks(Structure):
    _fields_ = [
        ("user", c_void_p),
        ("on_text", reason_on_text_fn),
        ("on_token", reason_on_token_fn),
        ("extract", reason_extract_fn),
    ]


class reason_params(Structure):
    _fields_ = [
        ("n_traces", c_int32),
        ("thinking_mode", c_int32),
        ("effort", c_int32),
        ("max_thinking_tokens", c_int32),
        ("min_thinking_tokens", c_int32),
        ("max_answer_tokens", c_int32),
        ("wrap_up", c_char_p),
        ("continuation", c_char_p),
        ("system", c_char_p),
        ("sampling", reason_sampler_params),
        ("stop_strings", POINTER(c_char_p)),
        ("n_stop_strings", c_int32),
        ("extract", c_int32),
        ("extract_regex", c_char_p),
        ("vote", c_int32),
        ("early_stop_share", c_float),
        ("early_stop", c_int32),
        ("prune", c_int32),
        ("prune_warmup", c_int32),
        ("prune_keep_percent", c_float),
        ("confidence_window", c_int32),
        ("loop_ngram", c_int32),
        ("loop_repeats", c_int32),
        ("loop_action", c_int32),
        ("loop_nudge", c_char_p),
        ("callbacks", POINTER(reason_callbacks)),
        ("reserved", c_int32 * 8),
    ]


class reason_trace_info(Structure):
    _fields_ = [
        ("finish_reason", c_int32),
        ("thinking_tokens", c_int32),
        ("answer_tokens", c_int32),
        ("mean_logprob", c_float),
        ("lowest_group_confidence", c_float),
        ("thinking", c_char_p),
        ("answer", c_char_p),
        ("extracted", c_char_p),
    ]


class reason_usage(Structure):
    _fields_ = [
        ("prompt_tokens", c_int32),
        ("generated_tokens", c_int32),
        ("thinking_tokens", c_int32),
        ("answer_tokens", c_int32),
        ("kv_peak_tokens", c_int64),
        ("seconds", c_double),
    ]


# ---- functions -----------------------------------------------------------------------------------
def _missing(name):
    def stub(*args):
        raise NotImplementedError(f"{name} is not exported by {lib._name} (an older build?)")
    stub.__name__ = name
    stub.argtypes = stub.restype = None
    return stub


def _declare(name, restype, *argtypes):
    try:
        fn = getattr(lib, name)
    except AttributeError:
        return _missing(name)
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
reason_token_is_control = _declare("reason_token_is_control", c_int32, reason_tokenizer_p,
                                   reason_token)
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
reason_seq_checkpoint = _declare("reason_seq_checkpoint", reason_status, reason_context_p, c_int32,
                                 c_int32)
reason_seq_restore = _declare("reason_seq_restore", reason_status, reason_context_p, c_int32,
                              c_int32)
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

# Reasoning runtime
reason_params_default = _declare("reason_params_default", None, _P(reason_params))
reason_run = _declare("reason_run", reason_status,
                      reason_context_p, c_char_p, _P(reason_params), _P(reason_result_p))
reason_run_prompt = _declare("reason_run_prompt", reason_status,
                             reason_context_p, c_char_p, _P(reason_params), _P(reason_result_p))
reason_result_free = _declare("reason_result_free", None, reason_result_p)
reason_result_n_traces = _declare("reason_result_n_traces", c_int32, reason_result_p)
reason_result_trace = _declare("reason_result_trace", reason_status,
                               reason_result_p, c_int32, _P(reason_trace_info))
reason_result_vote = _declare("reason_result_vote", reason_status,
                              reason_result_p, _P(c_char_p), _P(c_float))
reason_result_n_answers = _declare("reason_result_n_answers", c_int32, reason_result_p)
reason_result_answer = _declare("reason_result_answer", reason_status,
                                reason_result_p, c_int32, _P(c_char_p), _P(c_int32), _P(c_float))
reason_result_usage = _declare("reason_result_usage", reason_status,
                               reason_result_p, _P(reason_usage))

__all__ = [n for n in dir() if n.startswith(("reason_", "REASON_"))] + ["lib"]

# Catches a header/library mismatch early rather than as memory corruption later.
_lib_version = reason_version().decode()
if _lib_version.split(".")[0] != str(REASON_VERSION_MAJOR):
    raise ImportError(f"reason: library version {_lib_version} does not match the binding "
                      f"({REASON_VERSION_MAJOR}.{REASON_VERSION_MINOR}.{REASON_VERSION_PATCH})")
