/* mapped_file.h — a whole file, read-only in memory: mapped, or copied into anonymous memory in
 * 2 MiB pages (model weights: see enum reason_weights). */
#ifndef REASON_MAPPED_FILE_H
#define REASON_MAPPED_FILE_H

#include "core.h"

typedef struct mapped_file {
    const uint8_t *data; /* size bytes, read-only */
    size_t size;
    char *path; /* owned copy, for error messages */
} mapped_file;

/* REASON_ERR_IO naming the path and errno text when the file cannot be opened, mapped or read;
 * REASON_ERR_NOMEM when a copy is asked for (REASON_WEIGHTS_COPIED) and memory is short. */
RS_INTERNAL reason_status mapped_file_open(const char *path, mapped_file *out);
/* How this thread's later mapped_file_open calls place files (enum reason_weights; AUTO until
 * set). reason_model_load sets it from its params around its opens. Returns the previous. */
RS_INTERNAL int32_t mapped_file_set_weights(int32_t weights);
RS_INTERNAL void mapped_file_close(mapped_file *file);
/* MemAvailable of /proc/meminfo in bytes (free memory plus what the kernel can reclaim), or the
 * free pages where that file is missing. */
RS_INTERNAL uint64_t memory_available(void);

#endif
