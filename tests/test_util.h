/* test_util.h — paths to test data for the Check suites. */
#ifndef REASON_TEST_UTIL_H
#define REASON_TEST_UTIL_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

/* tests/data/<name>, from the REASON_TEST_DATA environment variable set by ctest. */
static inline const char *test_data_path(const char *name, char *buf, size_t cap) {
    const char *dir = getenv("REASON_TEST_DATA");
    snprintf(buf, cap, "%s/%s", dir ? dir : "tests/data", name);
    return buf;
}

/* ../shared/data/<name>, from REASON_SHARED_DATA. */
static inline const char *shared_data_path(const char *name, char *buf, size_t cap) {
    const char *dir = getenv("REASON_SHARED_DATA");
    snprintf(buf, cap, "%s/%s", dir ? dir : "../shared/data", name);
    return buf;
}

/* Runs a suite and returns the process exit code (Check prints "N%: Checks: ..." lines). */
static inline int run_suite(Suite *suite) {
    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? 0 : 1;
}

#endif
