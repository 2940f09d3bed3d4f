/* chat_template.h — rendering chat messages into prompt text for the known template families. */
#ifndef REASON_CHAT_TEMPLATE_H
#define REASON_CHAT_TEMPLATE_H

#include "core.h"

/* Renders with an explicit kind (not AUTO). */
RS_INTERNAL reason_status chat_render(int32_t kind, const reason_chat_message *messages,
                                      size_t n_messages, const reason_chat_params *params,
                                      char *buf, size_t capacity, size_t *out_len);

#endif
