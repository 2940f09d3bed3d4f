/* mapped_file.c — open + fstat + mmap(PROT_READ, MAP_PRIVATE) of a whole file. An empty file is
 * valid and maps to (data == NULL, size == 0): mmap of length 0 is an error on Linux. */
#include "mapped_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

reason_status mapped_file_open(const char *path, mapped_file *out) {
    RS_CHECK_ARG(path && out);
    memset(out, 0, sizeof *out);
    reason_status status = REASON_OK;
    size_t path_len = strlen(path);
    char *path_copy = rs_malloc(path_len + 1, "file path");
    if (!path_copy) return REASON_ERR_NOMEM;
    memcpy(path_copy, path, path_len + 1);

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        status = rs_error(REASON_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        status = rs_error(REASON_ERR_IO, "cannot stat '%s': %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        status = rs_error(REASON_ERR_IO, "cannot map '%s': not a regular file", path);
        goto fail;
    }
    if ((uintmax_t)st.st_size > (uintmax_t)SIZE_MAX) {
        status = rs_error(REASON_ERR_IO, "cannot map '%s': %lld bytes exceed the address space",
                          path, (long long)st.st_size);
        goto fail;
    }
    size_t size = (size_t)st.st_size;
    const uint8_t *data = NULL;
    if (size > 0) {
        void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            status = rs_error(REASON_ERR_IO, "cannot mmap '%s' (%zu bytes): %s", path, size,
                              strerror(errno));
            goto fail;
        }
        data = p;
    }
    /* The mapping stays valid after close. */
    close(fd);
    out->data = data;
    out->size = size;
    out->path = path_copy;
    return REASON_OK;

fail:
    if (fd >= 0) close(fd);
    free(path_copy);
    return status;
}

void mapped_file_close(mapped_file *file) {
    if (!file) return;
    if (file->data && file->size) munmap((void *)file->data, file->size);
    free(file->path);
    memset(file, 0, sizeof *file);
}
