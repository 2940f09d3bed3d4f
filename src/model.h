/* model.h — a loaded model: hyper-parameters, weights bound by name, tokenizer, chat template. */
#ifndef REASON_MODEL_H
#define REASON_MODEL_H

#include "core.h"
#include "gguf.h"

/* The chat template source (tokenizer.chat_template), or NULL when the model has none. */
RS_INTERNAL const char *model_chat_template(const reason_model *model);

#endif
