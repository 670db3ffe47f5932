#include "CKernels.h"

#include <string.h>

/* Eight tiles at once, one per lane, as the Swift transforms do (SIMD8). */
typedef float v8 __attribute__((vector_size(32)));

#if defined(__x86_64__) && defined(__clang__)
#define LW_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LW_CLONES
#endif

/* Helpers are macros or take vectors by pointer: a 32-byte vector passed by value has another
 * ABI in the baseline clone than in the AVX ones. */
#define LOAD8(p) \
    ({ \
        v8 loaded_; \
        memcpy(&loaded_, (p), sizeof loaded_); \
        loaded_; \
    })
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
            for (long i = 0; i < 6; i++) store8(&out[i], dst + (6 * i + j) * element_stride + tx, lanes);
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
            for (long i = 0; i < 6; i++) e[i] = LOAD8(src + (6 * i + j) * element_stride + tx);
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
