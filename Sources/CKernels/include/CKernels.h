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

/*
 * The output transform of F(4x4, 3x3) for one output channel: tile t's 36 values at
 * src[(6i + j) * element_stride + t] become A^T m A (+ shift), written at
 * out[offset[t] + r * ow + x] for r < valid_rows[t], x < valid_columns[t] (all 4 when all_full).
 */
void lw_winograd6x4_output(
    const float *src, long element_stride, long tiles, const long *offset, const long *valid_rows,
    const long *valid_columns, int all_full, long ow, float shift, float *out);

/*
 * The adjoint of lw_winograd6x4_output (without the shift): tile t's 4x4 output gradient, read at
 * dy[offset[t] + r * ow + x] (0 outside the output), becomes A dy A^T, stored at
 * dst[(6i + j) * element_stride + t].
 */
void lw_winograd6x4_output_gradient(
    const float *dy, long tiles, const long *offset, const long *valid_rows, const long *valid_columns, long ow,
    float *dst, long element_stride);

/*
 * The output transform of F(2x2, 5x5) for one output channel: 2x2 outputs per tile at
 * out[offset[t]], edge[t] bit 0 = second row inside, bit 1 = second column inside. With
 * row_aligned, every group of eight tiles is one whole row of 16 outputs (no edges).
 */
void lw_winograd6x2_output(
    const float *src, long element_stride, long tiles, const long *offset, const long *edge, int row_aligned,
    long ow, float shift, float *out);

/* The adjoint of lw_winograd6x2_output (without the shift). */
void lw_winograd6x2_output_gradient(
    const float *dy, long tiles, const long *offset, const long *edge, int row_aligned, long ow, float *dst,
    long element_stride);

/*
 * Direct stride-1 convolution of one image, for layers with few input channels (an RGB first
 * layer), where im2row + GEMM has a short inner dimension: out[o][y][x] = bias[o] (0 without) +
 * sum over c, ky, kx of w[((o * channels + c) * kh + ky) * kw + kx] *
 * in[c][y + ky - pad_y][x + kx - pad_x] (0 outside the image). `scratch` holds
 * lw_conv2d_direct_scratch_count floats: the zero-padded image.
 */
long lw_conv2d_direct_scratch_count(long channels, long height, long width, long kh, long kw, long pad_y, long pad_x);

void lw_conv2d_direct(
    const float *in, long channels, long height, long width, const float *w, long outputs, long kh, long kw,
    long pad_y, long pad_x, const float *bias, float *out, float *scratch);

/**
 * The weight gradient of lw_conv2d_direct for `images` consecutive images (`in` and `dy` hold
 * them one after another, NCHW): dw[((o * channels + c) * kh + ky) * kw + kx] += sum over the
 * images, y and x of dy[o][y][x] * in[c][y + ky - pad_y][x + kx - pad_x] (0 outside the image),
 * and, unless `db` is null, the bias gradient db[o] += sum over the images, y and x of
 * dy[o][y][x] (formed while each block of dy is in cache, not in another pass over it). The
 * sums are formed in 16 lanes across the images and added across lanes once per call, so a call
 * with more images costs less per image; results depend on `images` but not on anything else
 * (the same call gives the same bits on any thread). `scratch` holds
 * lw_conv2d_direct_weight_gradient_scratch_count floats: the padded images, the lane sums of
 * the weight and the bias, and a zero-tailed copy of dy's rows.
 */
long lw_conv2d_direct_weight_gradient_scratch_count(
    long images, long channels, long height, long width, long kh, long kw, long pad_y, long pad_x);

void lw_conv2d_direct_weight_gradient(
    const float *in, long images, long channels, long height, long width, const float *dy, long outputs, long kh,
    long kw, long pad_y, long pad_x, float *dw, float *db, float *scratch);

#endif
