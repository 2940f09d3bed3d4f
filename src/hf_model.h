/* hf_model.h — a Hugging Face model directory (config.json, model*.safetensors, tokenizer.json,
 * tokenizer_config.json) loaded into the same reason_model a GGUF file gives.
 *
 * The checkpoint's tensors are presented to model.c's binder under their GGUF names
 * (model.layers.N.self_attn.q_proj.weight is blk.N.attn_q.weight, ...), as gguf_tensor records
 * whose `name` is the checkpoint's own, so one binder checks every shape and type for both formats.
 * HF stores a Linear weight as [out, in] row-major, which is GGUF's ne = (in, out): no copy.
 * Vectors (norm gains, biases) stored as BF16/F16 become owned F32 copies; a llama3 rope_scaling
 * becomes an owned rope_freqs table. HF llama's q/k rows are not permuted (GGUF's are), so every
 * HF model rotates NeoX-style (rotate_half). */
#ifndef REASON_HF_MODEL_H
#define REASON_HF_MODEL_H

#include "model.h"

typedef struct hf_weights hf_weights;

/* Loads the model in directory dir. Errors name the file and the field or tensor involved. */
RS_INTERNAL reason_status hf_model_load(const char *dir, reason_model **out_model);
RS_INTERNAL void hf_weights_free(hf_weights *w);

/* The checkpoint's tensor for a GGUF tensor name, or NULL when absent. */
RS_INTERNAL const gguf_tensor *hf_find_tensor(const hf_weights *w, const char *gguf_name);
/* The directory, for messages. */
RS_INTERNAL const char *hf_weights_path(const hf_weights *w);
/* The checkpoint's spelling of a GGUF tensor name (for messages about absent tensors); the GGUF
 * name itself when it has no HF counterpart. */
RS_INTERNAL void hf_tensor_name(const char *gguf_name, char *buf, size_t cap);

#endif
