#ifndef LAYERWISE_CKERNELS_VECTORS_H
#define LAYERWISE_CKERNELS_VECTORS_H
/* What every kernel file shares: the clone list and unaligned vector loads. Helpers are macros
 * or take vectors by pointer: a 32- or 64-byte vector passed by value has another ABI in the
 * baseline clone than in the AVX ones. */

#include <string.h>

/* Each exported kernel is compiled for AVX-512, AVX2 and the baseline; the loader picks one. */
#if defined(__x86_64__) && defined(__clang__)
#define LW_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LW_CLONES
#endif

/* An unaligned load of a vector of type `type` from `p`. */
#define LW_LOAD(type, p) \
    ({ \
        type loaded_; \
        memcpy(&loaded_, (p), sizeof loaded_); \
        loaded_; \
    })

#endif
