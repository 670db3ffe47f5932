#include "ImageCodecs.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>
#include <jpeglib.h>
#include <jerror.h>

static void set_message(char *message, size_t size, const char *text) {
    if (message == NULL || size == 0) return;
    snprintf(message, size, "%s", text);
}

void lw_free(void *pointer) { free(pointer); }

/* MARK: PNG */

typedef struct {
    const unsigned char *data;
    size_t size;
    size_t offset;
    char *message;
    size_t message_size;
    volatile int status; /* changed between setjmp and longjmp */
    jmp_buf jump;
} png_context;

static void png_fail(png_structp png, png_const_charp text) {
    png_context *context = (png_context *)png_get_error_ptr(png);
    set_message(context->message, context->message_size, text);
    longjmp(context->jump, 1);
}

static void png_ignore_warning(png_structp png, png_const_charp text) {
    (void)png;
    (void)text;
}

static void png_read_memory(png_structp png, png_bytep destination, png_size_t length) {
    png_context *context = (png_context *)png_get_io_ptr(png);
    if (length > context->size - context->offset) png_error(png, "file is truncated (unexpected end of data)");
    memcpy(destination, context->data + context->offset, length);
    context->offset += length;
}

int lw_decode_png(const unsigned char *data, size_t size, lw_rgb_image *out, char *message, size_t message_size) {
    png_context context = {data, size, 0, message, message_size, LW_CORRUPT};
    /* volatile: read after longjmp. */
    unsigned char *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    png_structp png = NULL;
    png_infop info = NULL;
    out->pixels = NULL;
    out->width = out->height = 0;
    if (size < 8 || png_sig_cmp(data, 0, 8) != 0) {
        set_message(message, message_size, "not a PNG file (bad signature)");
        return LW_CORRUPT;
    }
    png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &context, png_fail, png_ignore_warning);
    if (png == NULL) return LW_NO_MEMORY;
    info = png_create_info_struct(png);
    if (info == NULL) {
        png_destroy_read_struct(&png, NULL, NULL);
        return LW_NO_MEMORY;
    }
    if (setjmp(context.jump)) {
        png_destroy_read_struct(&png, &info, NULL);
        free(rows);
        free(pixels);
        return context.status;
    }
    png_set_read_fn(png, &context, png_read_memory);
    png_read_info(png, info);
    png_uint_32 width = png_get_image_width(png, info), height = png_get_image_height(png, info);
    if ((double)width * (double)height > (double)LW_MAX_PIXELS) {
        context.status = LW_TOO_LARGE;
        png_error(png, "image has too many pixels");
    }
    int color = png_get_color_type(png, info);
    png_set_expand(png);         /* palette → RGB, gray < 8 bits → 8, tRNS → alpha */
    png_set_strip_16(png);       /* 16-bit → high byte */
    png_set_strip_alpha(png);
    if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)width * 3) {
        context.status = LW_UNSUPPORTED;
        png_error(png, "unsupported PNG pixel format");
    }
    context.status = LW_NO_MEMORY;
    pixels = malloc((size_t)width * height * 3);
    rows = malloc(sizeof(png_bytep) * height);
    if (pixels == NULL || rows == NULL) png_error(png, "out of memory");
    context.status = LW_CORRUPT;
    for (png_uint_32 y = 0; y < height; y++) rows[y] = pixels + (size_t)y * width * 3;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    out->pixels = pixels;
    out->width = (int)width;
    out->height = (int)height;
    return LW_OK;
}

/* MARK: JPEG */

typedef struct {
    struct jpeg_error_mgr base;
    jmp_buf jump;
    volatile int status; /* changed between setjmp and longjmp */
} jpeg_failure;

/* Replaces libjpeg's error_exit, which would print and call exit(). */
static void jpeg_fail(j_common_ptr cinfo) {
    jpeg_failure *failure = (jpeg_failure *)cinfo->err;
    if (cinfo->err->msg_code == JERR_CONVERSION_NOTIMPL || cinfo->err->msg_code == JERR_BAD_J_COLORSPACE)
        failure->status = LW_UNSUPPORTED;
    longjmp(failure->jump, 1);
}

/* Warnings (level -1) mean corrupt data libjpeg would paper over; remember them, print nothing. */
static void jpeg_message(j_common_ptr cinfo, int level) {
    if (level < 0) cinfo->err->num_warnings++;
}

static void jpeg_describe(j_common_ptr cinfo, char *message, size_t size) {
    char text[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, text);
    set_message(message, size, text);
}

int lw_decode_jpeg(const unsigned char *data, size_t size, lw_rgb_image *out, char *message, size_t message_size) {
    struct jpeg_decompress_struct cinfo;
    jpeg_failure failure;
    unsigned char *volatile pixels = NULL;
    out->pixels = NULL;
    out->width = out->height = 0;
    cinfo.err = jpeg_std_error(&failure.base);
    failure.base.error_exit = jpeg_fail;
    failure.base.emit_message = jpeg_message;
    failure.status = LW_CORRUPT;
    if (setjmp(failure.jump)) {
        jpeg_describe((j_common_ptr)&cinfo, message, message_size);
        jpeg_destroy_decompress(&cinfo);
        free(pixels);
        return failure.status;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);
    cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);
    size_t width = cinfo.output_width, height = cinfo.output_height;
    if ((double)width * (double)height > (double)LW_MAX_PIXELS || cinfo.output_components != 3) {
        set_message(message, message_size, cinfo.output_components != 3 ? "unsupported JPEG colour space"
                                                                          : "image has too many pixels");
        jpeg_destroy_decompress(&cinfo);
        return cinfo.output_components != 3 ? LW_UNSUPPORTED : LW_TOO_LARGE;
    }
    pixels = malloc(width * height * 3);
    if (pixels == NULL) {
        jpeg_destroy_decompress(&cinfo);
        set_message(message, message_size, "out of memory");
        return LW_NO_MEMORY;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = pixels + (size_t)cinfo.output_scanline * width * 3;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    if (failure.base.num_warnings > 0) {
        /* The last warning names what was wrong (e.g. "Premature end of JPEG file"). */
        jpeg_describe((j_common_ptr)&cinfo, message, message_size);
        jpeg_destroy_decompress(&cinfo);
        free(pixels);
        return LW_CORRUPT;
    }
    jpeg_destroy_decompress(&cinfo);
    out->pixels = pixels;
    out->width = (int)width;
    out->height = (int)height;
    return LW_OK;
}

int lw_encode_jpeg(const unsigned char *rgb, int width, int height, int quality,
                   unsigned char **out, unsigned long *out_size, char *message, size_t message_size) {
    struct jpeg_compress_struct cinfo;
    jpeg_failure failure;
    unsigned char *volatile buffer = NULL;
    unsigned long buffer_size = 0;
    *out = NULL;
    *out_size = 0;
    if (width <= 0 || height <= 0 || quality < 1 || quality > 100) {
        set_message(message, message_size, "width and height must be > 0, quality in 1...100");
        return LW_UNSUPPORTED;
    }
    cinfo.err = jpeg_std_error(&failure.base);
    failure.base.error_exit = jpeg_fail;
    failure.base.emit_message = jpeg_message;
    failure.status = LW_CORRUPT;
    if (setjmp(failure.jump)) {
        jpeg_describe((j_common_ptr)&cinfo, message, message_size);
        jpeg_destroy_compress(&cinfo);
        free(buffer);
        return failure.status;
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, (unsigned char **)&buffer, &buffer_size);
    cinfo.image_width = (JDIMENSION)width;
    cinfo.image_height = (JDIMENSION)height;
    cinfo.input_components = 3;
    cinfo.in_color_space = JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(rgb + (size_t)cinfo.next_scanline * width * 3);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    *out = buffer;
    *out_size = buffer_size;
    return LW_OK;
}
