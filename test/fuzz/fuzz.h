/* fuzz.h — what every libFuzzer target in test/fuzz shares: the entry points and CHECK,
 * an assert that holds in every build type (NDEBUG must not switch the oracle off). */
#ifndef ELTD_FUZZ_H
#define ELTD_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);        \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

#endif
