#include "CKernels.h"
#include "vectors.h"

/* Eight tiles at once, one per lane, as the Swift transforms do (SIMD8). */
typedef float v8 __attribute__((vector_size(32)));

#define LOAD8(p) LW_LOAD(v8, p)
#define SPLAT(x) ((v8){(x), (x), (x), (x), (x), (x), (x), (x)})
/* Lane l of the result is lane l - 1 of v (lane 0 is 0). */
#define SHIFTED_UP(v) __builtin_shufflevector((v), SPLAT(0.0f), 8, 0, 1, 2, 3, 4, 5, 6)

static inline void store8(const v8 *v, float *p, long lanes) {
    if (lanes == 8) {
        memcpy(p, v, sizeof *v);
    } else {
        for (long l = 0; l < lanes; l++) p[l] = (*v)[l];
    }
}

#define ADD_IN_PLACE(v, p) \
    do { \
        v8 sum_ = LOAD8(p) + (v); \
        memcpy((p), &sum_, sizeof sum_); \
    } while (0)

/* Element (6i + j) of eight tiles, i < 6: one column j of their 6x6 tiles. */
static inline void load_tile_column(const float *src, long element_stride, long t, long j, v8 e[6]) {
    for (long i = 0; i < 6; i++) e[i] = LOAD8(src + (6 * i + j) * element_stride + t);
}

static inline void store_tile_column(const v8 e[6], float *dst, long element_stride, long t, long j, long lanes) {
    for (long i = 0; i < 6; i++) store8(&e[i], dst + (6 * i + j) * element_stride + t, lanes);
}

/* B^T applied to six values (the matrix of Winograd4x4.swift, written out). */
static inline void b_transpose(const v8 d[6], v8 r[6]) {
    const v8 four = SPLAT(4.0f), five = SPLAT(5.0f), two = SPLAT(2.0f);
    v8 q = d[4] - d[2];
    v8 t = two * (d[3] - d[1]);
    r[0] = four * d[0] - five * d[2] + d[4];
    r[1] = d[3] + d[4] - four * d[2] - four * d[1];
    r[2] = four * d[1] - four * d[2] - d[3] + d[4];
    r[3] = q + t;
    r[4] = q - t;
    r[5] = four * d[1] - five * d[3] + d[5];
}

/* B applied to six values (the adjoint of b_transpose). */
static inline void b_apply(const v8 v[6], v8 r[6]) {
    const v8 four = SPLAT(4.0f), five = SPLAT(5.0f), two = SPLAT(2.0f);
    v8 s34 = v[3] + v[4];
    r[0] = four * v[0];
    r[1] = four * (v[2] - v[1] + v[5]) + two * (v[4] - v[3]);
    r[2] = -(five * v[0]) - four * (v[1] + v[2]) - s34;
    r[3] = v[1] - v[2] + two * (v[3] - v[4]) - five * v[5];
    r[4] = v[0] + v[1] + v[2] + s34;
    r[5] = v[5];
}

/* d[x] lane l = r[step * l + x], x < 6, by loads and shuffles (no gathers). */
static inline void deinterleave(const float *r, long step, v8 d[6]) {
    if (step == 4) {
        v8 a0 = LOAD8(r), a1 = LOAD8(r + 8), a2 = LOAD8(r + 16), a3 = LOAD8(r + 24), a4 = LOAD8(r + 32);
        v8 s01 = __builtin_shufflevector(a0, a1, 0, 4, 8, 12, 1, 5, 9, 13);
        v8 s23 = __builtin_shufflevector(a2, a3, 0, 4, 8, 12, 1, 5, 9, 13);
        v8 t01 = __builtin_shufflevector(a0, a1, 2, 6, 10, 14, 3, 7, 11, 15);
        v8 t23 = __builtin_shufflevector(a2, a3, 2, 6, 10, 14, 3, 7, 11, 15);
        d[0] = __builtin_shufflevector(s01, s23, 0, 1, 2, 3, 8, 9, 10, 11);
        d[1] = __builtin_shufflevector(s01, s23, 4, 5, 6, 7, 12, 13, 14, 15);
        d[2] = __builtin_shufflevector(t01, t23, 0, 1, 2, 3, 8, 9, 10, 11);
        d[3] = __builtin_shufflevector(t01, t23, 4, 5, 6, 7, 12, 13, 14, 15);
        d[4] = __builtin_shufflevector(d[0], a4, 1, 2, 3, 4, 5, 6, 7, 8);
        d[5] = __builtin_shufflevector(d[1], a4, 1, 2, 3, 4, 5, 6, 7, 9);
    } else { /* step 2 */
        v8 a0 = LOAD8(r), a1 = LOAD8(r + 8), a2 = LOAD8(r + 16);
        d[0] = __builtin_shufflevector(a0, a1, 0, 2, 4, 6, 8, 10, 12, 14);
        d[1] = __builtin_shufflevector(a0, a1, 1, 3, 5, 7, 9, 11, 13, 15);
        d[2] = __builtin_shufflevector(d[0], a2, 1, 2, 3, 4, 5, 6, 7, 8);
        d[3] = __builtin_shufflevector(d[1], a2, 1, 2, 3, 4, 5, 6, 7, 9);
        d[4] = __builtin_shufflevector(d[2], a2, 1, 2, 3, 4, 5, 6, 7, 10);
        d[5] = __builtin_shufflevector(d[3], a2, 1, 2, 3, 4, 5, 6, 7, 11);
    }
}

/* Adds p[x] lane l into row[step * l + x]: the values of overlapping tiles are summed in
 * registers, then interleaved into contiguous vector adds. */
static inline void scatter_add(const v8 p[6], float *row, long step) {
    if (step == 4) {
        v8 w0 = p[0] + SHIFTED_UP(p[4]), w1 = p[1] + SHIFTED_UP(p[5]);
        v8 lo01 = __builtin_shufflevector(w0, w1, 0, 8, 1, 9, 2, 10, 3, 11);
        v8 hi01 = __builtin_shufflevector(w0, w1, 4, 12, 5, 13, 6, 14, 7, 15);
        v8 lo23 = __builtin_shufflevector(p[2], p[3], 0, 8, 1, 9, 2, 10, 3, 11);
        v8 hi23 = __builtin_shufflevector(p[2], p[3], 4, 12, 5, 13, 6, 14, 7, 15);
        ADD_IN_PLACE(__builtin_shufflevector(lo01, lo23, 0, 1, 8, 9, 2, 3, 10, 11), row);
        ADD_IN_PLACE(__builtin_shufflevector(lo01, lo23, 4, 5, 12, 13, 6, 7, 14, 15), row + 8);
        ADD_IN_PLACE(__builtin_shufflevector(hi01, hi23, 0, 1, 8, 9, 2, 3, 10, 11), row + 16);
        ADD_IN_PLACE(__builtin_shufflevector(hi01, hi23, 4, 5, 12, 13, 6, 7, 14, 15), row + 24);
        row[32] += p[4][7];
        row[33] += p[5][7];
    } else { /* step 2 */
        v8 w0 = p[0] + SHIFTED_UP(p[2]) + SHIFTED_UP(SHIFTED_UP(p[4]));
        v8 w1 = p[1] + SHIFTED_UP(p[3]) + SHIFTED_UP(SHIFTED_UP(p[5]));
        ADD_IN_PLACE(__builtin_shufflevector(w0, w1, 0, 8, 1, 9, 2, 10, 3, 11), row);
        ADD_IN_PLACE(__builtin_shufflevector(w0, w1, 4, 12, 5, 13, 6, 14, 7, 15), row + 8);
        row[16] += p[2][7] + p[4][6];
        row[17] += p[3][7] + p[5][6];
        row[18] += p[4][7];
        row[19] += p[5][7];
    }
}

LW_CLONES
void lw_winograd6_input_tile_row(
    const float *rows, long width, long columns, long step, float *dst, long element_stride) {
    for (long tx = 0; tx < columns; tx += 8) {
        long lanes = columns - tx < 8 ? columns - tx : 8;
        v8 u[6][6];
        for (long k = 0; k < 6; k++) {
            v8 d[6];
            deinterleave(rows + k * width + step * tx, step, d);
            b_transpose(d, u[k]);
        }
        for (long j = 0; j < 6; j++) {
            v8 column[6] = {u[0][j], u[1][j], u[2][j], u[3][j], u[4][j], u[5][j]};
            v8 out[6];
            b_transpose(column, out);
            store_tile_column(out, dst, element_stride, tx, j, lanes);
        }
    }
}

LW_CLONES
void lw_winograd6_input_gradient_tile_row(
    const float *src, long element_stride, long columns, long step, float *acc, long width) {
    for (long tx = 0; tx < columns; tx += 8) {
        long lanes = columns - tx < 8 ? columns - tx : 8;
        v8 z[6][6];
        for (long j = 0; j < 6; j++) {
            v8 e[6];
            load_tile_column(src, element_stride, tx, j, e);
            b_apply(e, z[j]);
        }
        for (long k = 0; k < 6; k++) {
            v8 row_k[6] = {z[0][k], z[1][k], z[2][k], z[3][k], z[4][k], z[5][k]};
            v8 p[6];
            b_apply(row_k, p);
            float *row = acc + k * width + step * tx;
            if (lanes == 8) {
                scatter_add(p, row, step);
            } else {
                for (long x = 0; x < 6; x++)
                    for (long l = 0; l < lanes; l++) row[step * l + x] += p[x][l];
            }
        }
    }
}

/* A^T of F(4x4, 3x3) applied to six values: four outputs. */
static inline void a_transpose4(const v8 m[6], v8 y[4]) {
    v8 s12 = m[1] + m[2], d12 = m[1] - m[2], s34 = m[3] + m[4], d34 = m[3] - m[4];
    y[0] = m[0] + s12 + s34;
    y[1] = d12 + SPLAT(2.0f) * d34;
    y[2] = s12 + SPLAT(4.0f) * s34;
    y[3] = d12 + SPLAT(8.0f) * d34 + m[5];
}

/* A of F(4x4, 3x3) applied to four values (the adjoint of a_transpose4): six outputs. */
static inline void a_apply4(const v8 y[4], v8 r[6]) {
    v8 e = y[0] + y[2], o = y[1] + y[3];
    v8 e2 = y[0] + SPLAT(4.0f) * y[2], o2 = SPLAT(2.0f) * y[1] + SPLAT(8.0f) * y[3];
    r[0] = y[0];
    r[1] = e + o;
    r[2] = e - o;
    r[3] = e2 + o2;
    r[4] = e2 - o2;
    r[5] = y[3];
}

/* A^T of F(2x2, 5x5) applied to six values: two outputs. */
static inline void a_transpose2(const v8 m[6], v8 y[2]) {
    y[0] = m[0] + m[1] + m[2] + m[3] + m[4];
    y[1] = m[1] - m[2] + SPLAT(2.0f) * (m[3] - m[4]) + m[5];
}

/* A of F(2x2, 5x5) applied to two values: six outputs. */
static inline void a_apply2(const v8 y[2], v8 r[6]) {
    v8 two_y1 = SPLAT(2.0f) * y[1];
    r[0] = y[0];
    r[1] = y[0] + y[1];
    r[2] = y[0] - y[1];
    r[3] = y[0] + two_y1;
    r[4] = y[0] - two_y1;
    r[5] = y[1];
}

LW_CLONES
void lw_winograd6x4_output(
    const float *src, long element_stride, long tiles, const long *offset, const long *valid_rows,
    const long *valid_columns, int all_full, long ow, float shift, float *out) {
    for (long t = 0; t < tiles; t += 8) {
        long lanes = tiles - t < 8 ? tiles - t : 8;
        v8 c[6][4];
        for (long j = 0; j < 6; j++) {
            v8 e[6];
            load_tile_column(src, element_stride, t, j, e);
            a_transpose4(e, c[j]);
        }
        for (long r = 0; r < 4; r++) {
            v8 row[6] = {c[0][r], c[1][r], c[2][r], c[3][r], c[4][r], c[5][r]};
            v8 v[4];
            a_transpose4(row, v);
            for (long x = 0; x < 4; x++) v[x] += SPLAT(shift);
            for (long l = 0; l < lanes; l++) {
                float *line = out + offset[t + l] + r * ow;
                if (all_full) {
                    line[0] = v[0][l], line[1] = v[1][l], line[2] = v[2][l], line[3] = v[3][l];
                } else if (r < valid_rows[t + l]) {
                    for (long x = 0; x < valid_columns[t + l]; x++) line[x] = v[x][l];
                }
            }
        }
    }
}

LW_CLONES
void lw_winograd6x4_output_gradient(
    const float *dy, long tiles, const long *offset, const long *valid_rows, const long *valid_columns, long ow,
    float *dst, long element_stride) {
    for (long t = 0; t < tiles; t += 8) {
        long lanes = tiles - t < 8 ? tiles - t : 8;
        v8 w[4][6];
        for (long r = 0; r < 4; r++) {
            v8 v[4] = {SPLAT(0.0f), SPLAT(0.0f), SPLAT(0.0f), SPLAT(0.0f)};
            for (long l = 0; l < lanes; l++) {
                if (r >= valid_rows[t + l]) continue;
                const float *line = dy + offset[t + l] + r * ow;
                for (long x = 0; x < valid_columns[t + l]; x++) v[x][l] = line[x];
            }
            a_apply4(v, w[r]);
        }
        for (long j = 0; j < 6; j++) {
            v8 column[4] = {w[0][j], w[1][j], w[2][j], w[3][j]};
            v8 col[6];
            a_apply4(column, col);
            store_tile_column(col, dst, element_stride, t, j, lanes);
        }
    }
}

LW_CLONES
void lw_winograd6x2_output(
    const float *src, long element_stride, long tiles, const long *offset, const long *edge, int row_aligned,
    long ow, float shift, float *out) {
    for (long t = 0; t < tiles; t += 8) {
        long lanes = tiles - t < 8 ? tiles - t : 8;
        v8 c[6][2];
        for (long j = 0; j < 6; j++) {
            v8 e[6];
            load_tile_column(src, element_stride, t, j, e);
            a_transpose2(e, c[j]);
        }
        v8 top[2], bottom[2];
        v8 row0[6] = {c[0][0], c[1][0], c[2][0], c[3][0], c[4][0], c[5][0]};
        v8 row1[6] = {c[0][1], c[1][1], c[2][1], c[3][1], c[4][1], c[5][1]};
        a_transpose2(row0, top);
        a_transpose2(row1, bottom);
        for (long x = 0; x < 2; x++) top[x] += SPLAT(shift), bottom[x] += SPLAT(shift);
        float *line = out + offset[t];
        if (row_aligned && lanes == 8) { /* eight tiles side by side: 16 outputs per row */
            v8 v[4] = {
                __builtin_shufflevector(top[0], top[1], 0, 8, 1, 9, 2, 10, 3, 11),
                __builtin_shufflevector(top[0], top[1], 4, 12, 5, 13, 6, 14, 7, 15),
                __builtin_shufflevector(bottom[0], bottom[1], 0, 8, 1, 9, 2, 10, 3, 11),
                __builtin_shufflevector(bottom[0], bottom[1], 4, 12, 5, 13, 6, 14, 7, 15)};
            memcpy(line, &v[0], sizeof v[0]);
            memcpy(line + 8, &v[1], sizeof v[1]);
            memcpy(line + ow, &v[2], sizeof v[2]);
            memcpy(line + ow + 8, &v[3], sizeof v[3]);
            continue;
        }
        for (long l = 0; l < lanes; l++) {
            line = out + offset[t + l];
            long flags = edge[t + l];
            line[0] = top[0][l];
            if (flags & 2) line[1] = top[1][l];
            if (flags & 1) {
                line[ow] = bottom[0][l];
                if (flags & 2) line[ow + 1] = bottom[1][l];
            }
        }
    }
}

LW_CLONES
void lw_winograd6x2_output_gradient(
    const float *dy, long tiles, const long *offset, const long *edge, int row_aligned, long ow, float *dst,
    long element_stride) {
    for (long t = 0; t < tiles; t += 8) {
        long lanes = tiles - t < 8 ? tiles - t : 8;
        v8 y0[2] = {SPLAT(0.0f), SPLAT(0.0f)}, y1[2] = {SPLAT(0.0f), SPLAT(0.0f)};
        if (row_aligned && lanes == 8) { /* two rows of 16 contiguous outputs: even and odd lanes */
            const float *line = dy + offset[t];
            v8 a = LOAD8(line), b = LOAD8(line + 8), c = LOAD8(line + ow), d = LOAD8(line + ow + 8);
            y0[0] = __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14);
            y0[1] = __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15);
            y1[0] = __builtin_shufflevector(c, d, 0, 2, 4, 6, 8, 10, 12, 14);
            y1[1] = __builtin_shufflevector(c, d, 1, 3, 5, 7, 9, 11, 13, 15);
        } else {
            for (long l = 0; l < lanes; l++) {
                const float *line = dy + offset[t + l];
                long flags = edge[t + l];
                y0[0][l] = line[0];
                if (flags & 2) y0[1][l] = line[1];
                if (flags & 1) {
                    y1[0][l] = line[ow];
                    if (flags & 2) y1[1][l] = line[ow + 1];
                }
            }
        }
        v8 w0[6], w1[6];
        a_apply2(y0, w0);
        a_apply2(y1, w1);
        for (long j = 0; j < 6; j++) {
            v8 column[2] = {w0[j], w1[j]};
            v8 col[6];
            a_apply2(column, col);
            store_tile_column(col, dst, element_stride, t, j, lanes);
        }
    }
}
