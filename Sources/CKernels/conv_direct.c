#include "CKernels.h"

#include <string.h>

/* Sixteen output columns at once, eight output channels at a time: 16 accumulators, each input
 * vector loaded once and used by eight FMAs with broadcast weights. */
typedef float v16 __attribute__((vector_size(64)));

#if defined(__x86_64__) && defined(__clang__)
#define LW_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LW_CLONES
#endif

#define LOAD16(p) \
    ({ \
        v16 loaded_; \
        memcpy(&loaded_, (p), sizeof loaded_); \
        loaded_; \
    })
#define SPLAT16(x) \
    ((v16){(x), (x), (x), (x), (x), (x), (x), (x), (x), (x), (x), (x), (x), (x), (x), (x)})

enum { BLOCK_X = 16, BLOCK_O = 8 };

static long output_width(long width, long kw, long pad_x) { return width + 2 * pad_x - kw + 1; }

/* The padded row length: every 16-wide block of outputs reads 16 + kw - 1 inputs. */
static long padded_width(long width, long kw, long pad_x) {
    long ow = output_width(width, kw, pad_x);
    long blocks = (ow + BLOCK_X - 1) / BLOCK_X;
    long need = blocks * BLOCK_X + kw - 1, have = width + 2 * pad_x;
    return need > have ? need : have;
}

long lw_conv2d_direct_scratch_count(long channels, long height, long width, long kh, long kw, long pad_y, long pad_x) {
    (void)kh;
    return channels * (height + 2 * pad_y) * padded_width(width, kw, pad_x);
}

static void pad_image(
    const float *in, long channels, long height, long width, long pad_y, long pad_x, long pw, float *padded) {
    long ph = height + 2 * pad_y;
    memset(padded, 0, sizeof(float) * channels * ph * pw);
    for (long c = 0; c < channels; c++)
        for (long y = 0; y < height; y++)
            memcpy(padded + (c * ph + y + pad_y) * pw + pad_x, in + (c * height + y) * width, sizeof(float) * width);
}

/* Stores `count` (≤ 16) lanes of v plus `shift`. */
static inline void store_lanes(const v16 *v, float shift, float *p, long count) {
    v16 s = *v + SPLAT16(shift);
    if (count == BLOCK_X) {
        memcpy(p, &s, sizeof s);
    } else {
        for (long l = 0; l < count; l++) p[l] = s[l];
    }
}

LW_CLONES
void lw_conv2d_direct(
    const float *in, long channels, long height, long width, const float *w, long outputs, long kh, long kw,
    long pad_y, long pad_x, const float *bias, float *out, float *scratch) {
    long pw = padded_width(width, kw, pad_x), ph = height + 2 * pad_y;
    long oh = ph - kh + 1, ow = output_width(width, kw, pad_x), k = channels * kh * kw;
    pad_image(in, channels, height, width, pad_y, pad_x, pw, scratch);
    for (long y = 0; y < oh; y++) {
        for (long x0 = 0; x0 < ow; x0 += BLOCK_X) {
            long count = ow - x0 < BLOCK_X ? ow - x0 : BLOCK_X;
            long o0 = 0;
            for (; o0 + BLOCK_O <= outputs; o0 += BLOCK_O) {
                v16 acc[BLOCK_O];
                for (long q = 0; q < BLOCK_O; q++) acc[q] = SPLAT16(0.0f);
                const float *wq = w + o0 * k;
                for (long c = 0; c < channels; c++)
                    for (long ky = 0; ky < kh; ky++) {
                        const float *row = scratch + (c * ph + y + ky) * pw + x0;
                        const float *wk = wq + (c * kh + ky) * kw;
                        for (long kx = 0; kx < kw; kx++) {
                            v16 v = LOAD16(row + kx);
                            for (long q = 0; q < BLOCK_O; q++) acc[q] += SPLAT16(wk[q * k + kx]) * v;
                        }
                    }
                for (long q = 0; q < BLOCK_O; q++)
                    store_lanes(&acc[q], bias ? bias[o0 + q] : 0, out + ((o0 + q) * oh + y) * ow + x0, count);
            }
            for (; o0 < outputs; o0++) { /* the last outputs % 8 channels, one at a time */
                v16 acc = SPLAT16(0.0f);
                for (long c = 0; c < channels; c++)
                    for (long ky = 0; ky < kh; ky++)
                        for (long kx = 0; kx < kw; kx++)
                            acc += SPLAT16(w[o0 * k + (c * kh + ky) * kw + kx])
                                * LOAD16(scratch + (c * ph + y + ky) * pw + x0 + kx);
                store_lanes(&acc, bias ? bias[o0] : 0, out + (o0 * oh + y) * ow + x0, count);
            }
        }
    }
}
