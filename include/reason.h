/*
 * reason.h — the public interface of libreason, an inference library for open reasoning models.
 *
 * Rules that hold for every call (DESIGN.md §3):
 *  - Every fallible call returns a reason_status; REASON_OK is 0. On failure,
 *    reason_last_error() gives a thread-local message naming what failed and where (file offset,
 *    tensor name, shapes, token position); it is never NULL. A failed call leaves every object the
 *    caller already had as it was.
 *  - New objects come back through an out-parameter and are released with the matching *_free;
 *    *_free(NULL) is a no-op.
 *  - Caller-owned outputs are (pointer, capacity) pairs. When the capacity is too small the call
 *    returns REASON_ERR_BUFFER and stores the size it needs in the out-length parameter.
 *  - Option structs are filled by reason_*_params_default() and passed by const pointer (NULL means
 *    the defaults). The ABI uses only fixed-width integers, float, size_t, pointers and opaque
 *    handles, so ctypes and other FFIs can bind it directly.
 *  - A model is immutable once loaded and may be shared by contexts on many threads; a context is
 *    used by one thread at a time.
 */
#ifndef REASON_H
#define REASON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define REASON_API __declspec(dllexport)
#else
#define REASON_API __attribute__((visibility("default")))
#endif

#define REASON_VERSION_MAJOR 0
#define REASON_VERSION_MINOR 1
#define REASON_VERSION_PATCH 0

/* ---------------------------------------------------------------------------------------------- */
/* Status and errors                                                                              */

typedef int32_t reason_status;

enum reason_status_code {
    REASON_OK = 0,
    REASON_ERR_INVALID_ARG = 1,  /* NULL or out-of-range argument */
    REASON_ERR_IO = 2,           /* a file could not be opened, read or mapped */
    REASON_ERR_FORMAT = 3,       /* a file is malformed, truncated or inconsistent */
    REASON_ERR_UNSUPPORTED = 4,  /* unknown architecture, tensor type or template */
    REASON_ERR_NOMEM = 5,        /* an allocation failed */
    REASON_ERR_BUFFER = 6,       /* caller's buffer too small; the needed size was stored */
    REASON_ERR_CONTEXT_FULL = 7, /* no room left in the sequence state (KV cache) */
    REASON_ERR_DEVICE = 8,       /* an accelerator reported a failure */
    REASON_ERR_TEMPLATE = 9,     /* a chat template could not be applied */
    REASON_ERR_INTERNAL = 10     /* a broken invariant inside the library: please report */
};

/* The message for the last failed call on this thread; never NULL. */
REASON_API const char *reason_last_error(void);
/* A fixed name for a status code, e.g. "REASON_ERR_FORMAT". */
REASON_API const char *reason_status_name(reason_status status);
/* "MAJOR.MINOR.PATCH". */
REASON_API const char *reason_version(void);

typedef int32_t reason_token;

/* ---------------------------------------------------------------------------------------------- */
/* Models                                                                                         */

typedef struct reason_model reason_model;

/* Where a model's weights live. Decoding streams every weight once per token, and a file mapped
 * in 4 KiB pages costs a TLB miss and a restart of the hardware prefetcher every 4 KiB (measured
 * ~15% of decode speed, docs/performance.md); a copy in anonymous memory asks for 2 MiB pages. */
typedef enum reason_weights {
    REASON_WEIGHTS_AUTO = 0,   /* copied when a file is >= 32 MiB and fits in 3/4 of the memory
                                * available, else mapped */
    REASON_WEIGHTS_MAPPED = 1, /* used in place from the file's memory map (shared page cache) */
    REASON_WEIGHTS_COPIED = 2, /* always copied; REASON_ERR_NOMEM when that memory is not there */
} reason_weights;

typedef struct reason_model_params {
    int32_t n_threads; /* threads used while loading (validation); 0 = all cores */
    int32_t weights;   /* enum reason_weights (REASON_WEIGHTS_AUTO) */
    int32_t reserved[6];
} reason_model_params;

REASON_API void reason_model_params_default(reason_model_params *params);

/* Loads a model: a GGUF file, or a Hugging Face directory (config.json, model.safetensors or
 * shards with model.safetensors.index.json, tokenizer.json, tokenizer_config.json). Weights are
 * used from the files' memory maps or from a copy in memory (params->weights). */
REASON_API reason_status reason_model_load(const char *path, const reason_model_params *params,
                                           reason_model **out_model);
REASON_API void reason_model_free(reason_model *model);

typedef struct reason_model_info {
    char architecture[32]; /* "llama", "qwen2", "qwen3", ... */
    char name[128];        /* general.name, possibly truncated */
    int32_t n_vocab;
    int32_t n_ctx_train;
    int32_t n_embd;
    int32_t n_layer;
    int32_t n_head;
    int32_t n_head_kv;
    int32_t head_dim;
    int32_t n_ff;
    uint64_t n_params;
    uint64_t weight_bytes;
    /* weights one decoded token reads: all but the experts, plus n_expert_used experts (and a
       shared one) per layer, less the tables it reads one row of (an untied embedding, gemma4's
       per-layer embedding) */
    uint64_t active_weight_bytes;
    int32_t n_expert;      /* routed experts per layer, 0 for a dense model */
    int32_t n_expert_used; /* experts each token uses */
} reason_model_info;

REASON_API reason_status reason_model_get_info(const reason_model *model, reason_model_info *out);

/* A string metadata value (e.g. "tokenizer.chat_template"); REASON_ERR_INVALID_ARG if absent. */
REASON_API reason_status reason_model_meta_string(const reason_model *model, const char *key,
                                                  char *buf, size_t capacity, size_t *out_len);

/* ---------------------------------------------------------------------------------------------- */
/* Tokenizer                                                                                      */

typedef struct reason_tokenizer reason_tokenizer;

/* The tokenizer embedded in a model; owned by the model. */
REASON_API reason_status reason_model_tokenizer(const reason_model *model,
                                                const reason_tokenizer **out_tokenizer);
/* A stand-alone tokenizer from a Hugging Face tokenizer.json (or a folder holding one, with
 * tokenizer_config.json beside it when present). */
REASON_API reason_status reason_tokenizer_load(const char *path, reason_tokenizer **out_tokenizer);
REASON_API void reason_tokenizer_free(reason_tokenizer *tokenizer);

enum reason_tokenize_flags {
    REASON_TOKENIZE_ADD_SPECIAL = 1,   /* add BOS (and EOS) where the tokenizer asks for them */
    REASON_TOKENIZE_PARSE_SPECIAL = 2, /* recognise special/added tokens written in the text */
};

/* Tokenizes len bytes of UTF-8 text. Invalid UTF-8 is REASON_ERR_INVALID_ARG with the byte offset. */
REASON_API reason_status reason_tokenize(const reason_tokenizer *tokenizer, const char *text,
                                         size_t len, int32_t flags, reason_token *tokens,
                                         size_t capacity, size_t *out_n_tokens);

/* The raw bytes of one token (may be part of a UTF-8 character). */
REASON_API reason_status reason_token_to_bytes(const reason_tokenizer *tokenizer,
                                               reason_token token, char *buf, size_t capacity,
                                               size_t *out_len);

/* Detokenizes a whole sequence (special tokens rendered as their text when render_special). */
REASON_API reason_status reason_detokenize(const reason_tokenizer *tokenizer,
                                           const reason_token *tokens, size_t n_tokens,
                                           int32_t render_special, char *buf, size_t capacity,
                                           size_t *out_len);

REASON_API int32_t reason_tokenizer_n_vocab(const reason_tokenizer *tokenizer);

enum reason_special_token {
    REASON_SPECIAL_BOS = 0,
    REASON_SPECIAL_EOS = 1,
    REASON_SPECIAL_EOT = 2, /* end of turn (<|im_end|>, <|eot_id|>) */
    REASON_SPECIAL_PAD = 3,
    REASON_SPECIAL_THINK_BEGIN = 4, /* <think> where the vocabulary has it */
    REASON_SPECIAL_THINK_END = 5,   /* </think> */
};
/* The id of a special token, or -1 when the tokenizer has none. */
REASON_API reason_token reason_tokenizer_special(const reason_tokenizer *tokenizer, int32_t which);
/* 1 when generation should stop at this token (EOS, EOT and other end-of-generation tokens). */
REASON_API int32_t reason_token_is_end(const reason_tokenizer *tokenizer, reason_token token);
/* 1 for tokens that are not text: control (special), unknown and unused (padding) tokens. They
 * are dropped by reason_detokenize without render_special and by the streaming detokenizer. */
REASON_API int32_t reason_token_is_control(const reason_tokenizer *tokenizer, reason_token token);
/* Looks a token up by its exact text (e.g. "<think>"); -1 when absent. */
REASON_API reason_token reason_tokenizer_find(const reason_tokenizer *tokenizer, const char *text);

/* Streaming detokenizer: bytes of tokens go in, only complete UTF-8 characters come out; a
 * character split across tokens is held back until its last byte arrives. Control, unknown and
 * unused tokens add no text. */
typedef struct reason_detokenizer reason_detokenizer;
REASON_API reason_status reason_detokenizer_create(const reason_tokenizer *tokenizer,
                                                   reason_detokenizer **out);
/* Appends the text that token completes to buf (NUL-terminated); *out_len gets its length. */
REASON_API reason_status reason_detokenizer_push(reason_detokenizer *detok, reason_token token,
                                                 char *buf, size_t capacity, size_t *out_len);
/* Emits what is held back (invalid trailing bytes become U+FFFD). */
REASON_API reason_status reason_detokenizer_flush(reason_detokenizer *detok, char *buf,
                                                  size_t capacity, size_t *out_len);
REASON_API void reason_detokenizer_free(reason_detokenizer *detok);

/* ---------------------------------------------------------------------------------------------- */
/* Chat templates                                                                                 */

typedef struct reason_chat_message {
    const char *role; /* "system", "user", "assistant" ("developer": Harmony, Gemma 4) */
    const char *content;
} reason_chat_message;

enum reason_template_kind {
    REASON_TEMPLATE_AUTO = 0, /* detect from the model's tokenizer.chat_template */
    REASON_TEMPLATE_CHATML = 1,
    REASON_TEMPLATE_QWEN3 = 2,
    REASON_TEMPLATE_DEEPSEEK_R1 = 3,
    REASON_TEMPLATE_LLAMA3 = 4,
    REASON_TEMPLATE_SMOLLM2 = 5,
    REASON_TEMPLATE_QWEN35 = 6, /* Qwen3.5 (and Qwen3.8, detected from its template): opens
                                   "<think>\n" unless enable_thinking is 0 */
    REASON_TEMPLATE_HARMONY = 7, /* gpt-oss: Harmony messages and channels. A dated system block
                                    with "Reasoning: low|medium|high" (reasoning_effort, default
                                    medium); a first system or developer message becomes the
                                    developer instructions (later ones are refused); assistant
                                    turns "<think>r</think>a" render a as the final channel, r as
                                    an analysis message only with preserve_thinking ON; the
                                    generation prompt is "<|start|>assistant" */
    REASON_TEMPLATE_GEMMA4 = 8, /* Gemma 4: "<|turn>ROLE\n...<turn|>\n" turns, "<|think|>" atop the
                                   system turn when enable_thinking; past assistant turns lose their
                                   "<|channel>thought\n...<channel|>"; thinking off pre-closes an
                                   empty thought channel after "<|turn>model\n". No tools. In
                                   reason_run the channel is the thinking (its header tokens and
                                   close count as thinking), the answer follows the close up to
                                   "<turn|>"; a budget injects "<channel|>" (1 token) */
};

/* reason_chat_params.reasoning_effort: Qwen3.8's levels (low, medium, xhigh; its default is
 * xhigh) and gpt-oss's (low, medium, high; default medium). A level the template lacks is
 * REASON_ERR_TEMPLATE, as the template itself refuses it. */
enum reason_chat_effort {
    REASON_CHAT_EFFORT_DEFAULT = 0, /* not given: the template's own default */
    REASON_CHAT_EFFORT_LOW = 1,
    REASON_CHAT_EFFORT_MEDIUM = 2,
    REASON_CHAT_EFFORT_XHIGH = 3,
    REASON_CHAT_EFFORT_HIGH = 4,
};

/* reason_chat_params.preserve_thinking */
enum reason_chat_preserve {
    REASON_CHAT_PRESERVE_DEFAULT = 0, /* not given: the template's own default (Qwen3.8: keep) */
    REASON_CHAT_PRESERVE_ON = 1,      /* earlier assistant turns keep their think block */
    REASON_CHAT_PRESERVE_OFF = 2,     /* only turns after the last user query keep it */
};

typedef struct reason_chat_params {
    int32_t template_kind;         /* enum reason_template_kind */
    int32_t add_generation_prompt; /* 1: end with the assistant header (default 1) */
    int32_t enable_thinking;       /* Qwen3 / Qwen3.5 switch: 1 think (default, as the templates
                                      do when it is not given), 0 pre-closed empty think block */
    int32_t preserve_thinking;     /* enum reason_chat_preserve (Qwen3.8, Harmony; others ignore
                                      it) */
    int32_t reasoning_effort;      /* enum reason_chat_effort (Qwen3.8, Harmony; others ignore
                                      it) */
    int32_t current_date;          /* Harmony's "Current date:" as YYYYMMDD (20250628); 0: today
                                      (local time, as gpt-oss's template does); -1: no date line */
    int32_t reserved[2];
} reason_chat_params;

REASON_API void reason_chat_params_default(reason_chat_params *params);

/* Detects the template kind from a Jinja template source; REASON_ERR_UNSUPPORTED if unknown. */
REASON_API reason_status reason_chat_detect(const char *template_source, int32_t *out_kind);

/* Renders messages with the model's template (or params->template_kind). Unknown templates are
 * REASON_ERR_UNSUPPORTED: pass raw text to reason_tokenize instead. */
REASON_API reason_status reason_chat_apply(const reason_model *model,
                                           const reason_chat_message *messages, size_t n_messages,
                                           const reason_chat_params *params, char *buf,
                                           size_t capacity, size_t *out_len);

/* ---------------------------------------------------------------------------------------------- */
/* Contexts, sequences and decoding                                                               */

typedef struct reason_context reason_context;

enum reason_kv_type {
    REASON_KV_F16 = 0,
    REASON_KV_F32 = 1,
    REASON_KV_BF16 = 2,
    REASON_KV_Q8 = 3, /* 8 bits per value with an f32 scale per 32: 1.125 bytes per value instead
                         of 2, ~0.4% rounding per value; long traces decode faster (integer
                         attention kernels where the CPU has AVX-512 VNNI); CPU backend only, K/V
                         widths a multiple of 32 (docs/performance.md) */
};

/* How the CPU backend multiplies by quantized weights when decoding. */
enum reason_precision {
    REASON_PRECISION_EXACT = 0, /* f32 activations in every product (the default) */
    REASON_PRECISION_FAST = 1,  /* activations quantized to 8 bits per 32 for weights of an
                                   integer type (Q4_0, Q4_1, Q5_x, Q8_0, Q4_K, Q5_K, Q6_K, MXFP4)
                                   and integer dot products: 1.3-2x faster decoding, about
                                   1-2e-2 relative error on the logits (docs/performance.md) */
};

/* Parallel decoding steps (2-15 tokens at once, fast precision, CPU backend) multiply by weights
 * unpacked into the integer kernel's layout. Unpacking took a third of such a step, so by
 * default each matrix of type Q4_0, Q4_1 or Q8_0 (kept at 1.0x its bytes), Q4_K (1.33x), Q5_0 or
 * Q5_1 (1.5x) is unpacked once and kept by the context, on top of the weights, while the kept
 * ones fit in half the memory available at its first parallel step (docs/performance.md). */
enum reason_unpacked_weights {
    REASON_UNPACKED_KEPT = 0,     /* kept after the first parallel step (the default) */
    REASON_UNPACKED_PER_STEP = 1, /* unpacked at every step: no memory beyond the weights */
};

typedef struct reason_context_params {
    uint32_t n_ctx;     /* token slots in the sequence state, shared by all sequences (4096) */
    uint32_t n_seq_max; /* most sequences alive at once (64) */
    uint32_t n_batch;   /* most tokens in one reason_decode call (512) */
    int32_t n_threads;  /* 0 = all cores */
    int32_t kv_type;    /* enum reason_kv_type */
    int32_t kv_block_size; /* token slots per KV block (16) */
    int32_t n_outputs_max; /* most batch tokens that may ask for logits in one call (64) */
    int32_t precision;     /* enum reason_precision (EXACT) */
    int32_t unpacked_weights; /* enum reason_unpacked_weights (KEPT) */
    int32_t reserved[3];
} reason_context_params;

REASON_API void reason_context_params_default(reason_context_params *params);
REASON_API reason_status reason_context_create(const reason_model *model,
                                               const reason_context_params *params,
                                               reason_context **out_ctx);
REASON_API void reason_context_free(reason_context *ctx);

/* A batch of tokens, possibly from many sequences at different positions. Token i is placed at
 * position pos[i] of sequence seq_id[i]; positions of one sequence must continue its length.
 * want_logits[i] != 0 asks for the logits after token i (NULL: only the last token). */
typedef struct reason_batch {
    int32_t n_tokens;
    const reason_token *tokens;
    const int32_t *pos;
    const int32_t *seq_id;
    const int8_t *want_logits;
} reason_batch;

/* Evaluates a batch. On REASON_ERR_CONTEXT_FULL nothing of the batch is kept. */
REASON_API reason_status reason_decode(reason_context *ctx, const reason_batch *batch);
/* Logits (n_vocab floats) after batch token i of the last reason_decode; valid until the next. */
REASON_API reason_status reason_get_logits(reason_context *ctx, int32_t i, const float **out_logits);

/* Sequences are small ids in [0, n_seq_max). */
REASON_API reason_status reason_seq_length(const reason_context *ctx, int32_t seq, int32_t *out_len);
/* Drops positions >= n_keep of seq. A model with recurrent layers (qwen35) keeps no history to
 * rewind: there n_keep must be 0 or the current length (REASON_ERR_UNSUPPORTED otherwise); go
 * back with reason_seq_checkpoint / reason_seq_restore instead. A model with sliding-window
 * layers (gpt-oss) releases the positions behind each sequence's window at every reason_decode:
 * truncating back into the last batch of seq works until the next reason_decode, further back
 * only while the window still covers it (REASON_ERR_UNSUPPORTED otherwise: use a checkpoint). */
REASON_API reason_status reason_seq_truncate(reason_context *ctx, int32_t seq, int32_t n_keep);
/* Empties seq and releases its state. */
REASON_API reason_status reason_seq_free(reason_context *ctx, int32_t seq);
/* Makes child (which must be empty) a copy of parent's state; shared where the cache allows. */
REASON_API reason_status reason_seq_fork(reason_context *ctx, int32_t parent, int32_t child);

/* Checkpoints: saves seq's state at its current length into the empty sequence checkpoint
 * (sharing KV blocks — no copy — for full-attention layers), e.g. at the end of a prompt before
 * thinking begins. */
REASON_API reason_status reason_seq_checkpoint(reason_context *ctx, int32_t seq, int32_t checkpoint);
/* Replaces seq's state by the checkpoint's (seq is emptied first; the checkpoint stays). */
REASON_API reason_status reason_seq_restore(reason_context *ctx, int32_t checkpoint, int32_t seq);

typedef struct reason_context_stats {
    uint64_t kv_slots_total;   /* token slots in the pool */
    uint64_t kv_slots_used;    /* token slots held now */
    uint64_t kv_slots_peak;    /* most held at once */
    uint64_t kv_bytes;         /* bytes of the KV pool (full-attention layers) */
    uint64_t tokens_evaluated; /* tokens through reason_decode since creation */
    uint64_t rec_slots_total;  /* recurrent-state slots (hybrid models; 0 otherwise) */
    uint64_t rec_slots_used;   /* held by a sequence or a checkpoint now */
    uint64_t rec_bytes;        /* bytes of all recurrent-state slots */
    /* the sliding-window layers' KV pool (gpt-oss, Gemma; 0 otherwise): it keeps only each
     * sequence's last window of positions plus its last batch, blocks behind it are released */
    uint64_t swa_slots_total;  /* token slots in the windowed pool */
    uint64_t swa_slots_used;   /* held now */
    uint64_t swa_slots_peak;   /* most held at once */
    uint64_t swa_bytes;        /* bytes of the windowed pool */
    /* weights kept unpacked for parallel steps (enum reason_unpacked_weights; CPU backend),
     * memory on top of the model's */
    uint64_t unpacked_weight_bytes;
} reason_context_stats;
REASON_API reason_status reason_context_get_stats(const reason_context *ctx,
                                                  reason_context_stats *out);

/* ---------------------------------------------------------------------------------------------- */
/* Sampling                                                                                       */

typedef struct reason_sampler reason_sampler;

enum reason_sampler_stage {
    REASON_STAGE_PENALTIES = 0,
    REASON_STAGE_TOP_K = 1,
    REASON_STAGE_TOP_P = 2,
    REASON_STAGE_MIN_P = 3,
    REASON_STAGE_TEMPERATURE = 4,
};

typedef struct reason_sampler_params {
    float temperature;      /* <= 0: greedy (0.6) */
    int32_t top_k;          /* <= 0: off (20) */
    float top_p;            /* in (0, 1]; 1: off (0.95) */
    float min_p;            /* <= 0: off (0) */
    float repeat_penalty;   /* 1: off */
    float presence_penalty; /* 0: off */
    float frequency_penalty; /* 0: off */
    int32_t penalty_last_n; /* tokens the penalties look back on (64); -1: all */
    uint64_t seed;          /* same seed, same tokens */
    int32_t n_logprobs;     /* top alternatives reported per token (0..20) */
    int32_t n_order;        /* 0: HF's order: penalties, temperature, top-k, top-p, min-p */
    int32_t order[8];       /* enum reason_sampler_stage, applied in this order */
    int32_t reserved[4];
} reason_sampler_params;

#define REASON_MAX_LOGPROBS 20

typedef struct reason_token_choice {
    reason_token token;
    float logprob;  /* log-probability of token under the model's full distribution */
    int32_t n_top;  /* entries filled below */
    reason_token top_tokens[REASON_MAX_LOGPROBS];
    float top_logprobs[REASON_MAX_LOGPROBS];
} reason_token_choice;

REASON_API void reason_sampler_params_default(reason_sampler_params *params);
REASON_API reason_status reason_sampler_create(const reason_sampler_params *params, int32_t n_vocab,
                                               reason_sampler **out);
REASON_API void reason_sampler_free(reason_sampler *sampler);
/* Picks a token from logits (n_vocab floats; not modified). Does not record it: see accept. */
REASON_API reason_status reason_sampler_sample(reason_sampler *sampler, const float *logits,
                                               reason_token_choice *out);
/* Records a token in the penalty history (sampled or forced). */
REASON_API reason_status reason_sampler_accept(reason_sampler *sampler, reason_token token);
REASON_API void reason_sampler_reset(reason_sampler *sampler);


/* ---------------------------------------------------------------------------------------------- */
/* Reasoning runtime: traces with thinking budgets, parallel traces, answer extraction, votes     */
/* (DESIGN.md §2)                                                                                 */

enum reason_phase {
    REASON_PHASE_THINKING = 0,
    REASON_PHASE_ANSWER = 1,
    REASON_PHASE_DONE = 2,
};

enum reason_finish {
    REASON_FINISH_NONE = 0,         /* still running */
    REASON_FINISH_END = 1,          /* the model ended its answer (end-of-generation token) */
    REASON_FINISH_LENGTH = 2,       /* max_answer_tokens reached */
    REASON_FINISH_STOP_STRING = 3,  /* one of stop_strings appeared in the answer */
    REASON_FINISH_LOOP = 4,         /* the loop guard ended a repeating trace */
    REASON_FINISH_PRUNED = 5,       /* its confidence fell under the calibrated threshold */
    REASON_FINISH_CANCELLED = 6,    /* the vote was decided without it, or the caller stopped it */
    REASON_FINISH_CONTEXT_FULL = 7, /* no room left in the KV cache */
};

enum reason_effort {
    REASON_EFFORT_DEFAULT = 0, /* budgets as given */
    REASON_EFFORT_LOW = 1,
    REASON_EFFORT_MEDIUM = 2,
    REASON_EFFORT_HIGH = 3,
};

enum reason_thinking_mode {
    REASON_THINKING_AUTO = 0,     /* the model's own delimiters if it has them, else prompted */
    REASON_THINKING_MODEL = 1,    /* <think>/</think> tokens of the model (Harmony: its channels) */
    REASON_THINKING_PROMPTED = 2, /* a system prompt asks an instruct model to think in tags */
    REASON_THINKING_OFF = 3,      /* answer directly (Qwen3 enable_thinking=false) */
};

enum reason_extract_kind {
    REASON_EXTRACT_AUTO = 0,        /* \boxed{} if present, else "answer is X" / "Answer: X",
                                       else the last number, else the final line */
    REASON_EXTRACT_BOXED = 1,       /* contents of the last \boxed{...} */
    REASON_EXTRACT_LAST_NUMBER = 2, /* the last number in the answer */
    REASON_EXTRACT_FINAL_LINE = 3,  /* the last non-empty line */
    REASON_EXTRACT_REGEX = 4,       /* first capture group (or whole match) of extract_regex */
    REASON_EXTRACT_CALLBACK = 5,    /* callbacks->extract */
};

enum reason_vote_kind {
    REASON_VOTE_MAJORITY = 0,     /* one vote per trace with an answer */
    REASON_VOTE_MEAN_LOGPROB = 1, /* weighted by the trace's mean token log-probability (as exp) */
    REASON_VOTE_LOWEST_GROUP = 2, /* weighted by DeepConf's lowest sliding-window group confidence */
};

enum reason_loop_action {
    REASON_LOOP_END = 0,   /* finish the trace with REASON_FINISH_LOOP */
    REASON_LOOP_NUDGE = 1, /* inject loop_nudge text once, then end if it loops again */
};

/* What a callback returns: go on, end this trace's thinking now, or stop this trace. */
enum reason_action {
    REASON_ACTION_CONTINUE = 0,
    REASON_ACTION_END_THINKING = 1,
    REASON_ACTION_STOP = 2,
};

typedef struct reason_callbacks {
    void *user;
    /* Text of a trace as it streams (valid UTF-8), tagged with its phase (enum reason_phase). */
    int32_t (*on_text)(void *user, int32_t trace, int32_t phase, const char *text, size_t len);
    /* Every generated token with its log-probability (and top alternatives if n_logprobs > 0). */
    int32_t (*on_token)(void *user, int32_t trace, int32_t phase, const reason_token_choice *choice);
    /* REASON_EXTRACT_CALLBACK: writes the answer extracted from text into out (NUL-terminated);
     * returns its length, 0 when there is no answer. A length >= capacity means "truncated": the
     * callback is called once more with that much room (as snprintf). */
    size_t (*extract)(void *user, const char *text, size_t len, char *out, size_t capacity);
} reason_callbacks;

/* How traces run (reason_run). Every step, each live trace samples one token; then ONE
 * reason_decode evaluates the tokens of all traces (sampled or injected).
 *
 * Phases. THINKING starts when the prompt ends inside an opened <think> (DeepSeek-R1 templates;
 * prompted mode, where the runtime opens it after the generation prompt), or when the model's
 * first token is <think> (Qwen3: a model that starts otherwise answers at once, thinking 0);
 * Qwen3 with thinking off (or max_thinking_tokens == 0) renders a pre-closed block and starts in
 * ANSWER. Model mode matches the <think>/</think> tokens; prompted mode (and models without them)
 * matches the text, which may be split over tokens. Tags are neither streamed nor in the texts.
 * An end-of-generation token inside the thinking ends the thinking (the closing is injected
 * without the wrap-up; the end token is not fed) and the trace goes on to answer.
 *
 * Counting (exact; tests hold it): thinking_tokens counts every token of the THINKING phase that
 * the trace keeps, sampled or injected: the model's own <think> when it opens one, its own
 * </think> (or the tokens spelling it), continuations, nudges, the wrap-up and the closing
 * delimiter "\n</think>\n\n" (in model mode the </think> token, plus "\n" before and "\n\n"
 * after: 3 tokens on Qwen3). The budget: before each sampled thinking token, if thinking_tokens
 * >= max_thinking_tokens, the wrap-up (when set) and the delimiter are injected, so a trace whose
 * budget ends its thinking has exactly max_thinking_tokens + n(wrap_up) + n(delimiter); a model
 * that closes by itself stays at most max_thinking_tokens. Injections (continuation, nudge) are
 * cut to the budget left. END_THINKING from a callback injects the delimiter without the wrap-up.
 * min_thinking_tokens (clamped to max): a close (or end-of-generation token) sampled while
 * thinking_tokens < min is not fed; the continuation is injected instead. In prompted mode the
 * tokens that spelled that "</think>" are taken back out of the KV (truncate) and stop counting,
 * except a token that also carries text before the tag. answer_tokens counts the ANSWER phase's
 * tokens, the end-of-generation token included; at answer_tokens == max_answer_tokens the trace
 * ends with REASON_FINISH_LENGTH (the last token is not fed). Bytes after "</think>" inside the
 * token that completes it belong to the answer text; the token counts as thinking.
 *
 * Harmony (gpt-oss, REASON_TEMPLATE_HARMONY): the delimiters are message headers, not tags. After
 * the prompt's "<|start|>assistant" the model writes "<|channel|>analysis<|message|>" (thinking;
 * commentary is thinking too), the text, "<|end|>", then "<|start|>assistant<|channel|>final
 * <|message|>" (answer) and the answer, ended by "<|return|>", "<|end|>" or "<|call|>". Header
 * tokens are never text. From the prompt they count in the phase their channel opens (callbacks
 * see them as thinking until the channel is known); after a thinking message the model's
 * "<|end|>" and the next header count as thinking, as the injected end of thinking
 * "<|end|><|start|>assistant<|channel|>final<|message|>" (6 tokens) does. So a budget cut has
 * max_thinking_tokens + n(wrap_up) + 6 thinking tokens (the analysis header's 3 included, for a
 * budget of 3 or more), and a model that closes by itself at most max_thinking_tokens + 5 (its
 * final header); the budget never cuts a header (an END_THINKING asked inside one applies after
 * it). min_thinking:
 * an early "<|end|>" of the analysis becomes the continuation. A model that opens the final
 * channel at once has no thinking. Thinking off (or max_thinking_tokens 0) appends
 * "<|channel|>final<|message|>" to the generation prompt. Prompted mode does not apply.
 *
 * Effort (when max_thinking_tokens is -1): low 512, medium 2048, high 8192 thinking tokens. It
 * also sets the template's own switch where it has one: gpt-oss's "Reasoning: low|medium|high"
 * (Qwen3's is on/off; Qwen3.8's levels are left to reason_chat_apply).
 *
 * Votes. A trace that finishes with END, LENGTH, STOP_STRING or LOOP votes with the answer
 * extracted from its ANSWER text only (never from the thinking, whose last number is often an
 * intermediate); PRUNED, CANCELLED and CONTEXT_FULL traces do not vote and their extracted answer
 * is "". Early stop (early_stop = 1) is checked after every vote: the unfinished traces count as
 * the remaining weight (at most 1 each for MAJORITY and MEAN_LOGPROB; for LOWEST_GROUP a trace's
 * current lowest group once it has a full window, else the best lowest group among the finished
 * traces). Pruning: the first prune_warmup voting traces set the threshold; afterwards a trace
 * whose current group confidence (over a full window) falls under it ends as PRUNED. Cancelled
 * and pruned traces release their KV at once.
 *
 * Loop guard: a cycle of L <= loop_ngram tokens repeated loop_repeats times in a row at the end of
 * the trace, and covering at least 2 * loop_ngram tokens (so that one digit or separator token
 * repeated a few times is no loop: "1000000" is seven tokens on Qwen). Injected text restarts the
 * watch. Stop strings are matched on the answer's bytes, across tokens. REASON_ERR_CONTEXT_FULL:
 * the trace with the most tokens in that step's batch ends as CONTEXT_FULL and the step is retried
 * without it. */
typedef struct reason_params {
    int32_t n_traces;            /* parallel traces forked from one prefilled prompt (1) */
    int32_t thinking_mode;       /* enum reason_thinking_mode */
    int32_t effort;              /* enum reason_effort: sets budgets left at -1 (and the model's
                                    own switch where it has one) */
    int32_t max_thinking_tokens; /* then the end of thinking is injected; -1: unlimited (or by
                                    effort) */
    int32_t min_thinking_tokens; /* an earlier end of thinking is replaced by continuation (0) */
    int32_t max_answer_tokens;   /* answer budget (512); -1: unlimited */
    const char *wrap_up;         /* injected before the end of thinking when the budget ends it;
                                    NULL: none */
    const char *continuation;    /* replaces an early end of thinking ("\nWait"; NULL or "":
                                    the default) */
    const char *system;          /* system message; NULL: none (prompted mode appends its
                                    instruction to think in tags to it) */
    reason_sampler_params sampling; /* trace i uses seed sampling.seed + i */
    const char *const *stop_strings; /* end the answer when one appears (not included) */
    int32_t n_stop_strings;
    int32_t extract;             /* enum reason_extract_kind */
    const char *extract_regex;   /* PCRE2 pattern for REASON_EXTRACT_REGEX */
    int32_t vote;                /* enum reason_vote_kind */
    float early_stop_share;      /* stop once the leader holds this share of the weight cast
                                    plus the most the unfinished traces could still add (0: only
                                    when it can no longer be overtaken) */
    int32_t early_stop;          /* 1: cancel unfinished traces once the vote is decided */
    int32_t prune;               /* 1: DeepConf online pruning */
    int32_t prune_warmup;        /* traces finished before the threshold is set (4) */
    float prune_keep_percent;    /* keep traces as confident as the top keep_percent of the
                                    warm-up ones (90: DeepConf-high; 10: DeepConf-low) */
    int32_t confidence_window;   /* tokens in DeepConf's sliding group (128) */
    int32_t loop_ngram;          /* n-gram length the loop guard watches (0: off; default 16) */
    int32_t loop_repeats;        /* consecutive repeats of a cycle that count as a loop (4) */
    int32_t loop_action;         /* enum reason_loop_action */
    const char *loop_nudge;      /* text injected by REASON_LOOP_NUDGE */
    const reason_callbacks *callbacks;
    int32_t reserved[8];
} reason_params;

REASON_API void reason_params_default(reason_params *params);

typedef struct reason_result reason_result;

typedef struct reason_trace_info {
    int32_t finish_reason;   /* enum reason_finish */
    int32_t thinking_tokens; /* tokens sampled or injected while thinking (see reason_params) */
    int32_t answer_tokens;
    float mean_logprob;      /* mean log-probability of the trace's sampled tokens */
    float lowest_group_confidence; /* DeepConf: lowest mean of -mean(top-k logprobs) over windows */
    const char *thinking;    /* NUL-terminated; owned by the result */
    const char *answer;
    const char *extracted;   /* normalised extracted answer, "" when none */
} reason_trace_info;

typedef struct reason_usage {
    int32_t prompt_tokens;
    int32_t generated_tokens;  /* all traces, both phases, injected text included */
    int32_t thinking_tokens;
    int32_t answer_tokens;
    int64_t kv_peak_tokens;    /* most KV slots held at once during the run (pool counters) */
    double seconds;
} reason_usage;

/* Runs the question (a user message, rendered with the model's chat template) as n_traces traces
 * and votes. The context needs n_seq_max >= n_traces + 1 and n_outputs_max >= n_traces; sequences
 * 0..n_traces must be empty (0 holds the prompt, then is forked into 1..n_traces and freed); all
 * are empty again when it returns, on success or failure. */
REASON_API reason_status reason_run(reason_context *ctx, const char *question,
                                    const reason_params *params, reason_result **out_result);
/* The same from an already rendered prompt (raw text, special tokens parsed, BOS added where the
 * tokenizer asks). Traces start in THINKING when the prompt's last "<think>" is not closed, in
 * ANSWER when it ends with a closed think block, else they wait for the model's "<think>". For a
 * Harmony model (by its chat template) they start in the phase of the channel whose message the
 * prompt ends in, else wait for the model's header. */
REASON_API reason_status reason_run_prompt(reason_context *ctx, const char *prompt,
                                           const reason_params *params,
                                           reason_result **out_result);
REASON_API void reason_result_free(reason_result *result);

REASON_API int32_t reason_result_n_traces(const reason_result *result);
REASON_API reason_status reason_result_trace(const reason_result *result, int32_t i,
                                             reason_trace_info *out);
/* The winning normalised answer ("" when no trace gave one) and its weight share in [0, 1]. */
REASON_API reason_status reason_result_vote(const reason_result *result, const char **out_answer,
                                            float *out_share);
/* Distinct answers by decreasing weight: answer i, its vote count and its weight. */
REASON_API int32_t reason_result_n_answers(const reason_result *result);
REASON_API reason_status reason_result_answer(const reason_result *result, int32_t i,
                                              const char **out_answer, int32_t *out_count,
                                              float *out_weight);
REASON_API reason_status reason_result_usage(const reason_result *result, reason_usage *out);

#ifdef __cplusplus
}
#endif

#endif /* REASON_H */
