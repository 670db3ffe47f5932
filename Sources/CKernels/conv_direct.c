#include "CKernels.h"
#include "vectors.h"

/* Sixteen output columns at once, eight output channels at a time: 16 accumulators, each input
 * vector loaded once and used by eight FMAs with broadcast weights. */
typedef float v16 __attribute__((vector_size(64)));

#define LOAD16(p) LW_LOAD(v16, p)
#define SPLAT16(x) \
    ((v16){(x), (x), (x), (x), (x), (x), (x), (x), (x), (x), (x), (x), (x), (x), (x), (x)})

enum { BLOCK_X = 16, BLOCK_O = 8 };

static long output_width(long width, long kw, long pad_x) { return width + 2 * pad_x - kw + 1; }

/* The padded row length: every 32-wide block of outputs reads 32 + kw - 1 inputs. */
static long padded_width(long width, long kw, long pad_x) {
    long ow = output_width(width, kw, pad_x);
    long blocks = (ow + 2 * BLOCK_X - 1) / (2 * BLOCK_X);
    long need = blocks * 2 * BLOCK_X + kw - 1, have = width + 2 * pad_x;
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

/* Eight output channels over 32 output columns (16 accumulators: two vectors per broadcast
 * weight, enough independent FMAs to hide their latency). `in` points at the block's first
 * input of channel 0, row 0; `count` (1 to 32) columns are stored. */
static inline void block_pair(
    const float *in, long plane, long pw, const float *w, long k, long channels, long kh, long kw, const float *bias,
    float *out, long out_plane, long count) {
    v16 a[BLOCK_O], b[BLOCK_O];
    for (long q = 0; q < BLOCK_O; q++) a[q] = SPLAT16(0.0f), b[q] = SPLAT16(0.0f);
    for (long c = 0; c < channels; c++)
        for (long ky = 0; ky < kh; ky++) {
            const float *row = in + c * plane + ky * pw;
            const float *wk = w + (c * kh + ky) * kw;
            for (long kx = 0; kx < kw; kx++) {
                v16 v0 = LOAD16(row + kx), v1 = LOAD16(row + kx + BLOCK_X);
                for (long q = 0; q < BLOCK_O; q++) {
                    v16 wq = SPLAT16(wk[q * k + kx]);
                    a[q] += wq * v0;
                    b[q] += wq * v1;
                }
            }
        }
    for (long q = 0; q < BLOCK_O; q++) {
        float shift = bias ? bias[q] : 0;
        store_lanes(&a[q], shift, out + q * out_plane, count < BLOCK_X ? count : BLOCK_X);
        if (count > BLOCK_X) store_lanes(&b[q], shift, out + q * out_plane + BLOCK_X, count - BLOCK_X);
    }
}

/* One output channel over up to 16 columns (the channels left over by the blocks of eight). */
static inline void single_output(
    const float *in, long plane, long pw, const float *w, long channels, long kh, long kw, float shift, float *out,
    long count) {
    v16 acc = SPLAT16(0.0f);
    for (long c = 0; c < channels; c++)
        for (long ky = 0; ky < kh; ky++)
            for (long kx = 0; kx < kw; kx++)
                acc += SPLAT16(w[(c * kh + ky) * kw + kx]) * LOAD16(in + c * plane + ky * pw + kx);
    store_lanes(&acc, shift, out, count);
}

LW_CLONES
void lw_conv2d_direct(
    const float *in, long channels, long height, long width, const float *w, long outputs, long kh, long kw,
    long pad_y, long pad_x, const float *bias, float *out, float *scratch) {
    long pw = padded_width(width, kw, pad_x), ph = height + 2 * pad_y;
    long oh = ph - kh + 1, ow = output_width(width, kw, pad_x), k = channels * kh * kw;
    pad_image(in, channels, height, width, pad_y, pad_x, pw, scratch);
    for (long y = 0; y < oh; y++) {
        for (long x0 = 0; x0 < ow; x0 += 2 * BLOCK_X) {
            long count = ow - x0 < 2 * BLOCK_X ? ow - x0 : 2 * BLOCK_X;
            const float *in_block = scratch + y * pw + x0;
            long o0 = 0;
            for (; o0 + BLOCK_O <= outputs; o0 += BLOCK_O)
                block_pair(in_block, ph * pw, pw, w + o0 * k, k, channels, kh, kw, bias ? bias + o0 : 0,
                           out + (o0 * oh + y) * ow + x0, oh * ow, count);
            for (; o0 < outputs; o0++) { /* the last outputs % 8 channels, one at a time */
                float *o_row = out + (o0 * oh + y) * ow + x0;
                float shift = bias ? bias[o0] : 0;
                long first = count < BLOCK_X ? count : BLOCK_X;
                single_output(in_block, ph * pw, pw, w + o0 * k, channels, kh, kw, shift, o_row, first);
                if (count > BLOCK_X)
                    single_output(in_block + BLOCK_X, ph * pw, pw, w + o0 * k, channels, kh, kw, shift,
                                  o_row + BLOCK_X, count - BLOCK_X);
            }
        }
    }
}
