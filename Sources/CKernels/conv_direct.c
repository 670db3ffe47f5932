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
static inline __attribute__((always_inline)) void block_pair(
    const float *in, long plane, long pw, const float *w, long k, long channels, long kh, long kw, const float *bias,
    float *out, long out_plane, long count) {
    v16 a[BLOCK_O], b[BLOCK_O];
    for (long q = 0; q < BLOCK_O; q++) a[q] = SPLAT16(0.0f), b[q] = SPLAT16(0.0f);
    /* One loop over the channels' kernel rows, not a loop per channel and kernel row: with the
     * nested loops the compiler copied all 16 accumulators between registers at every tap. */
    const float *row = in, *wk = w;
    for (long r = 0, ky = 0; r < channels * kh; r++, wk += kw) {
        for (long kx = 0; kx < kw; kx++) {
            v16 v0 = LOAD16(row + kx), v1 = LOAD16(row + kx + BLOCK_X);
            for (long q = 0; q < BLOCK_O; q++) {
                v16 wq = SPLAT16(wk[q * k + kx]);
                a[q] += wq * v0;
                b[q] += wq * v1;
            }
        }
        row += pw;
        if (++ky == kh) ky = 0, row += plane - kh * pw; /* the next channel */
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

/* Eight outputs over the whole image. Called with a constant kw, which the tap loop then counts
 * to (with the one loop over kernel rows above: 11 % faster than a variable kw and nested loops,
 * measured at 64 and 96 outputs). */
static inline __attribute__((always_inline)) void output_block(
    const float *padded, long ph, long pw, long oh, long ow, const float *w, long k, long channels, long kh,
    const long kw, const float *bias, float *out) {
    for (long y = 0; y < oh; y++)
        for (long x0 = 0; x0 < ow; x0 += 2 * BLOCK_X) {
            long count = ow - x0 < 2 * BLOCK_X ? ow - x0 : 2 * BLOCK_X;
            block_pair(padded + y * pw + x0, ph * pw, pw, w, k, channels, kh, kw, bias, out + y * ow + x0, oh * ow,
                       count);
        }
}

LW_CLONES
void lw_conv2d_direct(
    const float *in, long channels, long height, long width, const float *w, long outputs, long kh, long kw,
    long pad_y, long pad_x, const float *bias, float *out, float *scratch) {
    long pw = padded_width(width, kw, pad_x), ph = height + 2 * pad_y;
    long oh = ph - kh + 1, ow = output_width(width, kw, pad_x), k = channels * kh * kw;
    pad_image(in, channels, height, width, pad_y, pad_x, pw, scratch);
    /* Output blocks outermost, so each block writes its planes front to back. With the rows
     * outermost, every 32-column block wrote a row of each of the O planes, all 4 KB apart and so
     * in one L1 set: 96 outputs ran at half the speed of 64. */
    long o0 = 0;
    for (; o0 + BLOCK_O <= outputs; o0 += BLOCK_O) {
        const float *w_block = w + o0 * k, *b_block = bias ? bias + o0 : 0;
        float *out_block = out + o0 * oh * ow;
        switch (kw) {
        case 3: output_block(scratch, ph, pw, oh, ow, w_block, k, channels, kh, 3, b_block, out_block); break;
        case 5: output_block(scratch, ph, pw, oh, ow, w_block, k, channels, kh, 5, b_block, out_block); break;
        case 6: output_block(scratch, ph, pw, oh, ow, w_block, k, channels, kh, 6, b_block, out_block); break;
        case 7: output_block(scratch, ph, pw, oh, ow, w_block, k, channels, kh, 7, b_block, out_block); break;
        default: output_block(scratch, ph, pw, oh, ow, w_block, k, channels, kh, kw, b_block, out_block);
        }
    }
    for (; o0 < outputs; o0++) { /* the last outputs % 8 channels, one at a time */
        float shift = bias ? bias[o0] : 0;
        for (long y = 0; y < oh; y++)
            for (long x0 = 0; x0 < ow; x0 += BLOCK_X) {
                long count = ow - x0 < BLOCK_X ? ow - x0 : BLOCK_X;
                single_output(scratch + y * pw + x0, ph * pw, pw, w + o0 * k, channels, kh, kw, shift,
                              out + (o0 * oh + y) * ow + x0, count);
            }
    }
}

/* The weight gradient. Per block of up to five output channels, input channel c and kernel row
 * ky, the sums over the output positions are kept as vectors of 16 column lanes, so each dY and
 * input vector loaded feeds several FMAs and no lane crosses another until the end. A block's
 * lane sums live in `lanes` from image to image and are added across lanes once per call, which
 * shares that cost among the call's images. */

enum { GRADIENT_O = 5, MAX_TAPS = 5 };

#define STORE16(p, v) memcpy((p), &(v), sizeof(v16))

/* Adds dY[q][y][x] · X[y][x + t] over `rows` rows of `chunks` 16-column chunks into the lanes of
 * tap t of output q (lanes + (q * lane_stride + t) * 16), for q < outs and t < taps. With
 * constant outs and taps the outs · taps accumulators stay in registers: 5 × 5 of them take 10
 * loads per 25 FMAs (4 × 5, 9 per 20, ran 7 % slower). */
static inline __attribute__((always_inline)) void accumulate_taps(
    const float *x, long pw, const float *dy, long dy_row, long dy_plane, long rows, long chunks, float *lanes,
    long lane_stride, const long outs, const long taps) {
    v16 acc[GRADIENT_O][MAX_TAPS];
    for (long q = 0; q < outs; q++)
        for (long t = 0; t < taps; t++) acc[q][t] = LOAD16(lanes + (q * lane_stride + t) * BLOCK_X);
    for (long y = 0; y < rows; y++)
        for (long j = 0; j < chunks; j++) {
            const float *x_chunk = x + y * pw + j * BLOCK_X, *dy_chunk = dy + y * dy_row + j * BLOCK_X;
            v16 d[GRADIENT_O];
            for (long q = 0; q < outs; q++) d[q] = LOAD16(dy_chunk + q * dy_plane);
            for (long t = 0; t < taps; t++) {
                v16 v = LOAD16(x_chunk + t);
                for (long q = 0; q < outs; q++) acc[q][t] += d[q] * v;
            }
        }
    for (long q = 0; q < outs; q++)
        for (long t = 0; t < taps; t++) STORE16(lanes + (q * lane_stride + t) * BLOCK_X, acc[q][t]);
}

/* All kw taps of one kernel row, in groups of constant size whose accumulators fit the 32
 * vector registers (5 outputs × 7 taps would not: 7 is split 4 + 3, and the paper classifier's 6
 * into 3 + 3 rather than the fallback's 4 + 1 + 1). */
static inline __attribute__((always_inline)) void accumulate_kernel_row(
    const float *x, long pw, const float *dy, long dy_row, long dy_plane, long rows, long chunks, float *lanes,
    long lane_stride, long kw, const long outs) {
#define TAPS(first, count) \
    accumulate_taps( \
        x + (first), pw, dy, dy_row, dy_plane, rows, chunks, lanes + (first) * BLOCK_X, lane_stride, outs, count)
    switch (kw) {
    case 3: TAPS(0, 3); break;
    case 5: TAPS(0, 5); break;
    case 6: TAPS(0, 3); TAPS(3, 3); break;
    case 7: TAPS(0, 4); TAPS(4, 3); break;
    default: {
        long kx = 0;
        for (; kx + 4 <= kw; kx += 4) TAPS(kx, 4);
        for (; kx < kw; kx++) TAPS(kx, 1);
    }
    }
#undef TAPS
}

/* Prefetches part `part` of `parts` of `planes` planes of `plane` floats. A batch's output
 * gradient comes from memory, and each 4 KB plane would make the hardware prefetcher start
 * over (it stops at page boundaries); fetched a part per pass of the block before, the next
 * block's gradient is in cache when its passes start (measured: about 10 % less time). */
static inline void prefetch_part(const float *block, long planes, long plane, long part, long parts) {
    long lines_per_plane = (plane + BLOCK_X - 1) / BLOCK_X, lines = planes * lines_per_plane;
    long per_part = (lines + parts - 1) / parts, first = part * per_part;
    long count = first + per_part < lines ? per_part : lines - first;
    long q = first / lines_per_plane, line = first - q * lines_per_plane;
    for (long i = 0; i < count; i++) {
        __builtin_prefetch(block + q * plane + line * BLOCK_X, 0, 3);
        if (++line == lines_per_plane) q++, line = 0;
    }
}

/* `outs` planes of `rows` × `ow` gradients, `plane` floats apart, copied to rows of `chunks`
 * 16-column chunks whose tails are zero: a dY vector may then run past the row's end. */
static void copy_zero_tailed(const float *dy, long outs, long plane, long rows, long ow, long chunks, float *dst) {
    long row = chunks * BLOCK_X;
    for (long q = 0; q < outs; q++)
        for (long y = 0; y < rows; y++) {
            float *d = dst + (q * rows + y) * row;
            memcpy(d, dy + q * plane + y * ow, sizeof(float) * ow);
            memset(d + ow, 0, sizeof(float) * (row - ow));
        }
}

/* The outputs of the block that starts with `left` outputs to go: five while the rest can still
 * be made of fives and fours (64 = 12 · 5 + 4, 96 = 16 · 5 + 4 · 4), else four, and one at a
 * time only when fewer than four are left. The rest r needs b fours with 4b ≡ r (mod 5), that is
 * b = 4r mod 5, which fit when 4b ≤ r. */
static long block_outputs(long left) {
    long rest = left - GRADIENT_O;
    if (rest >= 0 && 4 * (4 * rest % 5) <= rest) return GRADIENT_O;
    return left >= 4 ? 4 : 1;
}

/* The sizes of one call. */
struct gradient_shape {
    long channels, ph, pw, outputs, oh, ow, kh, kw;
};

/* Adds the `outs` planes of `rows` rows of `chunks` 16-column vectors to `bias_lanes`, one
 * vector of lanes per output. */
static void accumulate_bias(const float *dy, long dy_row, long dy_plane, long rows, long chunks, long outs,
                            float *bias_lanes) {
    for (long q = 0; q < outs; q++) {
        v16 acc = LOAD16(bias_lanes + q * BLOCK_X);
        for (long y = 0; y < rows; y++)
            for (long j = 0; j < chunks; j++) acc += LOAD16(dy + q * dy_plane + y * dy_row + j * BLOCK_X);
        STORE16(bias_lanes + q * BLOCK_X, acc);
    }
}

/* Adds one image's sums for `outs` outputs (5, 4 or 1) to `lanes`, one pass per (c, ky), each
 * pass also prefetching a part of `next_dy` (the next block's `next_outs` planes, or null);
 * with `bias_lanes`, also the image's dY sums, while its planes are still in cache. */
static inline __attribute__((always_inline)) void accumulate_image(
    const float *padded, const float *dy, long outs, const struct gradient_shape *s, float *lanes,
    float *bias_lanes, float *dy_rows, const float *next_dy, long next_outs) {
    long k = s->channels * s->kh * s->kw, chunks = (s->ow + BLOCK_X - 1) / BLOCK_X;
    long dy_row = s->ow, dy_plane = s->oh * s->ow, passes = s->channels * s->kh;
    if (s->ow % BLOCK_X != 0) {
        copy_zero_tailed(dy, outs, dy_plane, s->oh, s->ow, chunks, dy_rows);
        dy = dy_rows, dy_row = chunks * BLOCK_X, dy_plane = s->oh * dy_row;
    }
    for (long pass = 0; pass < passes; pass++) {
        if (next_dy) prefetch_part(next_dy, next_outs, s->oh * s->ow, pass, passes);
        long c = pass / s->kh, ky = pass % s->kh;
        const float *x = padded + (c * s->ph + ky) * s->pw;
        float *row_lanes = lanes + pass * s->kw * BLOCK_X;
        if (outs == GRADIENT_O)
            accumulate_kernel_row(x, s->pw, dy, dy_row, dy_plane, s->oh, chunks, row_lanes, k, s->kw, GRADIENT_O);
        else if (outs == 4)
            accumulate_kernel_row(x, s->pw, dy, dy_row, dy_plane, s->oh, chunks, row_lanes, k, s->kw, 4);
        else
            accumulate_kernel_row(x, s->pw, dy, dy_row, dy_plane, s->oh, chunks, row_lanes, k, s->kw, 1);
    }
    if (bias_lanes) accumulate_bias(dy, dy_row, dy_plane, s->oh, chunks, outs, bias_lanes);
}

/* The sum of 16 lanes, in a fixed order. */
static inline float sum_lanes(const float *p) {
    typedef float v4 __attribute__((vector_size(16)));
    v4 s = LW_LOAD(v4, p) + LW_LOAD(v4, p + 4) + (LW_LOAD(v4, p + 8) + LW_LOAD(v4, p + 12));
    return (s[0] + s[2]) + (s[1] + s[3]);
}

long lw_conv2d_direct_weight_gradient_scratch_count(
    long images, long channels, long height, long width, long kh, long kw, long pad_y, long pad_x) {
    long oh = height + 2 * pad_y - kh + 1, chunks = (output_width(width, kw, pad_x) + BLOCK_X - 1) / BLOCK_X;
    long padded = images * lw_conv2d_direct_scratch_count(channels, height, width, kh, kw, pad_y, pad_x);
    long lanes = GRADIENT_O * (channels * kh * kw + 1) * BLOCK_X;
    return padded + lanes + GRADIENT_O * oh * chunks * BLOCK_X;
}

LW_CLONES
void lw_conv2d_direct_weight_gradient(
    const float *in, long images, long channels, long height, long width, const float *dy, long outputs, long kh,
    long kw, long pad_y, long pad_x, float *dw, float *db, float *scratch) {
    struct gradient_shape s = {
        channels, height + 2 * pad_y, padded_width(width, kw, pad_x), outputs, height + 2 * pad_y - kh + 1,
        output_width(width, kw, pad_x), kh, kw};
    long k = channels * kh * kw, padded_image = channels * s.ph * s.pw, dy_image = outputs * s.oh * s.ow;
    float *lanes = scratch + images * padded_image, *bias_lanes = lanes + GRADIENT_O * k * BLOCK_X;
    float *dy_rows = bias_lanes + GRADIENT_O * BLOCK_X;
    for (long n = 0; n < images; n++)
        pad_image(in + n * channels * height * width, channels, height, width, pad_y, pad_x, s.pw,
                  scratch + n * padded_image);
    for (long o0 = 0, outs; o0 < outputs; o0 += outs) {
        outs = block_outputs(outputs - o0);
        long next_block_outs = o0 + outs < outputs ? block_outputs(outputs - o0 - outs) : 0;
        memset(lanes, 0, sizeof(float) * outs * k * BLOCK_X);
        memset(bias_lanes, 0, sizeof(float) * outs * BLOCK_X);
        for (long n = 0; n < images; n++) {
            /* The next block: these outputs in the next image, or the next outputs in image 0. */
            long next_n = n + 1 < images ? n + 1 : 0, next_o = n + 1 < images ? o0 : o0 + outs;
            long next_outs = n + 1 < images ? outs : next_block_outs;
            const float *next_dy = next_outs ? dy + next_n * dy_image + next_o * s.oh * s.ow : 0;
            accumulate_image(scratch + n * padded_image, dy + n * dy_image + o0 * s.oh * s.ow, outs, &s, lanes,
                             db ? bias_lanes : 0, dy_rows, next_dy, next_outs);
        }
        for (long i = 0; i < outs * k; i++) dw[o0 * k + i] += sum_lanes(lanes + i * BLOCK_X);
        if (db)
            for (long q = 0; q < outs; q++) db[o0 + q] += sum_lanes(bias_lanes + q * BLOCK_X);
    }
}
