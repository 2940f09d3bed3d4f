/* tokenizer.h — internal side of the tokenizer (the public calls are in reason.h). */
#ifndef REASON_TOKENIZER_H
#define REASON_TOKENIZER_H

#include "core.h"
#include "gguf.h"

/* Builds the tokenizer stored in a GGUF file's tokenizer.ggml.* metadata. The tokenizer copies
 * what it keeps, so it may outlive the file. */
RS_INTERNAL reason_status tokenizer_from_gguf(const gguf_file *file, reason_tokenizer **out);

/* The chat template that came with the tokenizer (tokenizer_config.json), or NULL. */
RS_INTERNAL const char *tokenizer_chat_template(const reason_tokenizer *tokenizer);

#endif
