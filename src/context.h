/* context.h — internal accessors of a context for the modules built on it (trace.c). */
#ifndef REASON_CONTEXT_H
#define REASON_CONTEXT_H

#include "core.h"

RS_INTERNAL const reason_model *context_model(const reason_context *ctx);
RS_INTERNAL const reason_context_params *context_params(const reason_context *ctx);

#endif
