/* mapped_file.h — a whole file mapped read-only; model weights are used in place from it. */
#ifndef REASON_MAPPED_FILE_H
#define REASON_MAPPED_FILE_H

#include "core.h"

typedef struct mapped_file {
    const uint8_t *data; /* size bytes, read-only */
    size_t size;
    char *path; /* owned copy, for error messages */
} mapped_file;

/* REASON_ERR_IO naming the path and errno text when the file cannot be opened or mapped. */
RS_INTERNAL reason_status mapped_file_open(const char *path, mapped_file *out);
RS_INTERNAL void mapped_file_close(mapped_file *file);

#endif
