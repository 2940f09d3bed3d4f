// The public header compiles as C++ and its calls link from C++.
#include "reason.h"

#include <cstdio>
#include <cstring>

int main() {
    if (std::strcmp(reason_version(), "0.1.0") != 0) {
        std::printf("unexpected version %s\n", reason_version());
        return 1;
    }
    reason_model *model = nullptr;
    reason_status st = reason_model_load(nullptr, nullptr, &model);
    if (st != REASON_ERR_INVALID_ARG || model != nullptr) {
        std::printf("NULL path gave %s\n", reason_status_name(st));
        return 1;
    }
    std::printf("1 passed, 0 failed\n");
    return 0;
}
