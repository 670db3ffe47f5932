#ifndef LAYERWISE_IMAGE_CODECS_H
#define LAYERWISE_IMAGE_CODECS_H
/*
 * PNG and JPEG decoding to 8-bit RGB, and JPEG encoding, over libpng and libjpeg(-turbo).
 *
 * Both libraries report errors by longjmp. Here every setjmp and every longjmp happens
 * inside these C functions and the libraries' own C frames, never across a Swift frame:
 * a failure returns a non-zero status and a message, and nothing leaks.
 */
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A decoded image: height rows of width RGB triplets; free `pixels` with lw_free. */
typedef struct {
    unsigned char *pixels;
    int width;
    int height;
} lw_rgb_image;

/* Status codes. */
enum {
    LW_OK = 0,
    LW_CORRUPT = 1,      /* the data is damaged or truncated */
    LW_UNSUPPORTED = 2,  /* valid, but a kind this decoder does not convert (e.g. CMYK JPEG) */
    LW_NO_MEMORY = 3,
    LW_TOO_LARGE = 4     /* more than LW_MAX_PIXELS pixels */
};

/* Largest image decoded (width · height), against decompression bombs. */
#define LW_MAX_PIXELS (1L << 28)

/* Decodes a PNG of any colour type and depth (grayscale, palette, RGBA, 16-bit) to RGB8:
 * palettes and low bit depths are expanded, grayscale is replicated, alpha is dropped and
 * 16-bit samples keep their high byte. */
int lw_decode_png(const unsigned char *data, size_t size, lw_rgb_image *out, char *message, size_t message_size);

/* Decodes a baseline or progressive JPEG (grayscale or YCbCr) to RGB8. Corrupt data that
 * libjpeg would only warn about (e.g. a premature end of file) is reported as LW_CORRUPT. */
int lw_decode_jpeg(const unsigned char *data, size_t size, lw_rgb_image *out, char *message, size_t message_size);

/* Encodes RGB8 as a baseline JPEG of the given quality (1...100); free `*out` with lw_free. */
int lw_encode_jpeg(const unsigned char *rgb, int width, int height, int quality,
                   unsigned char **out, unsigned long *out_size, char *message, size_t message_size);

void lw_free(void *pointer);

#ifdef __cplusplus
}
#endif
#endif
