/* mapped_file.c — open + fstat + mmap(PROT_READ, MAP_PRIVATE) of a whole file, or a read-only
 * copy of it in anonymous memory that asks for 2 MiB pages (enum reason_weights). An empty file
 * is valid and maps to (data == NULL, size == 0): mmap of length 0 is an error on Linux. */
#include "mapped_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define COPY_MIN (32u << 20)

static _Thread_local int32_t weights_policy = REASON_WEIGHTS_AUTO;

int32_t mapped_file_set_weights(int32_t weights) {
    const int32_t old = weights_policy;
    weights_policy = weights;
    return old;
}

uint64_t memory_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[128];
    unsigned long long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
    if (f) fclose(f);
    if (kb) return (uint64_t)kb * 1024u;
    const long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
}

/* *out = the file's bytes in anonymous memory with 2 MiB pages asked for, read-only. */
static reason_status copy_file(int fd, const char *path, size_t size, const uint8_t **out) {
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return rs_error(REASON_ERR_NOMEM, "out of memory copying '%s' (%zu bytes) into memory",
                        path, size);
#ifdef MADV_HUGEPAGE
    (void)madvise(p, size, MADV_HUGEPAGE); /* a hint: 4 KiB pages still work */
#endif
    for (size_t got = 0; got < size;) {
        const ssize_t r = pread(fd, (uint8_t *)p + got, size - got, (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            const int err = errno;
            munmap(p, size);
            return rs_error(REASON_ERR_IO, "cannot read '%s' at byte %zu: %s", path, got,
                            r < 0 ? strerror(err) : "unexpected end of file");
        }
        got += (size_t)r;
    }
    (void)mprotect(p, size, PROT_READ);
    *out = p;
    return REASON_OK;
}

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
    const bool copy = size > 0 && (weights_policy == REASON_WEIGHTS_COPIED ||
                                   (weights_policy == REASON_WEIGHTS_AUTO && size >= COPY_MIN &&
                                    size <= memory_available() / 4 * 3));
    if (copy) { /* AUTO maps the file when the copy fails; COPIED reports it */
        status = copy_file(fd, path, size, &data);
        if (status != REASON_OK && weights_policy == REASON_WEIGHTS_COPIED) goto fail;
        status = REASON_OK;
    }
    if (size > 0 && !data) {
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
