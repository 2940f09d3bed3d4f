/* test_header_c.c — the public header alone compiles as strict C (-pedantic) and its ABI-facing
 * types have the fixed sizes the header promises for FFI users. */
#include "reason.h"

#include <stdio.h>
#include <string.h>

int main(void) {
    int failed = 0;
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            printf("FAILED: %s\n", #cond);                                                         \
            failed++;                                                                              \
        }                                                                                          \
    } while (0)
    CHECK(sizeof(reason_status) == 4);
    CHECK(sizeof(reason_token) == 4);
    CHECK(REASON_OK == 0);
    CHECK(strcmp(reason_version(), "0.1.0") == 0);
    CHECK(reason_last_error() != NULL);
    reason_context_params cp;
    reason_context_params_default(&cp);
    CHECK(cp.n_ctx > 0 && cp.kv_block_size == 16);
    reason_params rp;
    reason_params_default(&rp);
    CHECK(rp.n_traces == 1);
    reason_model *model = NULL;
    CHECK(reason_model_load(NULL, NULL, &model) == REASON_ERR_INVALID_ARG && model == NULL);
    reason_model_free(NULL);
    printf("%d passed, %d failed\n", failed ? 0 : 1, failed ? 1 : 0);
    return failed ? 1 : 0;
}
