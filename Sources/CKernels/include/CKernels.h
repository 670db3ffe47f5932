#ifndef LAYERWISE_CKERNELS_H
#define LAYERWISE_CKERNELS_H
/*
 * Hot loops that profit from the processor's widest vector registers. Swift compiles for the
 * x86-64 baseline (SSE2) unless a package passes unsafe flags; these C functions carry their
 * own AVX-512, AVX2 and baseline versions (target_clones), and the loader picks the one the
 * processor runs. Same arguments and results as the Swift code they replace, which the tests
 * check against im2row convolutions.
 */

/*
 * The input transform of 6x6-tile Winograd (F(4x4, 3x3) with step 4, F(2x2, 5x5) with step 2)
 * for one row of tiles: `rows` holds the tile row's six padded input rows, `width` floats
 * apart; tile t starts at column step * t. Writes (B^T d B)[6i + j] of tile t to
 * dst[(6i + j) * element_stride + t] for t < columns. Reads up to step * 8 * ceil(columns / 8) + 8
 * floats of each row.
 */
void lw_winograd6_input_tile_row(
    const float *rows, long width, long columns, long step, float *dst, long element_stride);

/*
 * The adjoint of lw_winograd6_input_tile_row: adds (B dV B^T) of tile t, its 36 values read at
 * src[(6i + j) * element_stride + t], into acc[k * width + step * t + x] (k, x < 6). Reads up to
 * 8 * ceil(columns / 8) values of each element (the tile matrix's slack).
 */
void lw_winograd6_input_gradient_tile_row(
    const float *src, long element_stride, long columns, long step, float *acc, long width);

#endif
