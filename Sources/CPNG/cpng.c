#include "cpng.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// libpng reports errors by calling this and expecting it not to return; we
// record the message and longjmp back to the setjmp in the calling function.
typedef struct {
    jmp_buf jump;
    char *error;
    size_t error_capacity;
} cpng_context;

static void cpng_on_error(png_structp png, png_const_charp message) {
    cpng_context *context = (cpng_context *)png_get_error_ptr(png);
    snprintf(context->error, context->error_capacity, "%s", message);
    longjmp(context->jump, 1);
}

static void cpng_on_warning(png_structp png, png_const_charp message) {
    (void)png;
    (void)message;
}

typedef struct {
    const uint8_t *data;
    size_t length;
    size_t offset;
} cpng_reader;

static void cpng_read(png_structp png, png_bytep target, png_size_t count) {
    cpng_reader *reader = (cpng_reader *)png_get_io_ptr(png);
    if (count > reader->length - reader->offset) {
        png_error(png, "truncated PNG data");
    }
    memcpy(target, reader->data + reader->offset, count);
    reader->offset += count;
}

void cpng_image_free(cpng_image *image) {
    if (!image) return;
    free(image->pixels);
    for (size_t i = 0; i < image->text_count; i++) {
        free((void *)image->texts[i].key);
        free((void *)image->texts[i].text);
    }
    free(image->texts);
    memset(image, 0, sizeof(*image));
}

int cpng_decode(const uint8_t *data, size_t length, uint32_t max_side, uint64_t max_pixels,
                cpng_image *out, char *error, size_t error_capacity) {
    memset(out, 0, sizeof(*out));
    if (length < 8 || png_sig_cmp(data, 0, 8) != 0) {
        snprintf(error, error_capacity, "not a PNG file (bad signature)");
        return 1;
    }
    cpng_context context;
    context.error = error;
    context.error_capacity = error_capacity;
    cpng_reader reader = {data, length, 0};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &context, cpng_on_error, cpng_on_warning);
    if (!png) {
        snprintf(error, error_capacity, "out of memory");
        return 1;
    }
    png_infop info = png_create_info_struct(png);
    // Volatile: these change between setjmp and a possible longjmp.
    png_bytep *volatile rows = NULL;
    uint8_t *volatile pixels = NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        snprintf(error, error_capacity, "out of memory");
        return 1;
    }
    if (setjmp(context.jump)) {
        free(rows);
        free(pixels);
        png_destroy_read_struct(&png, &info, NULL);
        cpng_image_free(out);
        return 1;
    }
    png_set_read_fn(png, &reader, cpng_read);
    png_set_user_limits(png, max_side, max_side);
    png_read_info(png, info);

    png_uint_32 width = png_get_image_width(png, info);
    png_uint_32 height = png_get_image_height(png, info);
    if ((uint64_t)width * (uint64_t)height > max_pixels) {
        png_error(png, "image has too many pixels");
    }
    int color_type = png_get_color_type(png, info);
    int bit_depth = png_get_bit_depth(png, info);
    if (bit_depth == 16) png_set_strip_16(png);
    if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);

    uint32_t channels = png_get_channels(png, info);
    size_t row_bytes = png_get_rowbytes(png, info);
    if (channels < 1 || channels > 4 || row_bytes != (size_t)width * channels) {
        png_error(png, "unsupported PNG layout");
    }
    pixels = malloc(row_bytes * height);
    rows = malloc(sizeof(png_bytep) * height);
    if (!pixels || !rows) png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < height; y++) rows[y] = pixels + (size_t)y * row_bytes;
    png_read_image(png, rows);
    png_read_end(png, info);

    png_textp texts = NULL;
    int text_count = 0;
    png_get_text(png, info, &texts, &text_count);
    if (text_count > 0) {
        out->texts = calloc((size_t)text_count, sizeof(cpng_text));
        if (!out->texts) png_error(png, "out of memory");
        for (int i = 0; i < text_count; i++) {
            out->texts[i].key = strdup(texts[i].key);
            out->texts[i].text = strdup(texts[i].text ? texts[i].text : "");
            out->text_count = (size_t)i + 1;
        }
    }
    out->width = width;
    out->height = height;
    out->channels = channels;
    out->pixels = pixels;
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    return 0;
}

typedef struct {
    uint8_t *data;
    size_t length;
    size_t capacity;
} cpng_writer;

static void cpng_write(png_structp png, png_bytep source, png_size_t count) {
    cpng_writer *writer = (cpng_writer *)png_get_io_ptr(png);
    if (writer->length + count > writer->capacity) {
        size_t capacity = writer->capacity ? writer->capacity : 4096;
        while (capacity < writer->length + count) capacity *= 2;
        uint8_t *grown = realloc(writer->data, capacity);
        if (!grown) png_error(png, "out of memory");
        writer->data = grown;
        writer->capacity = capacity;
    }
    memcpy(writer->data + writer->length, source, count);
    writer->length += count;
}

static void cpng_flush(png_structp png) { (void)png; }

int cpng_encode(const uint8_t *pixels, uint32_t width, uint32_t height, uint32_t channels,
                const cpng_text *texts, size_t text_count, int compression_level,
                uint8_t **out, size_t *out_length, char *error, size_t error_capacity) {
    *out = NULL;
    *out_length = 0;
    int color_type;
    switch (channels) {
    case 1: color_type = PNG_COLOR_TYPE_GRAY; break;
    case 2: color_type = PNG_COLOR_TYPE_GRAY_ALPHA; break;
    case 3: color_type = PNG_COLOR_TYPE_RGB; break;
    case 4: color_type = PNG_COLOR_TYPE_RGB_ALPHA; break;
    default:
        snprintf(error, error_capacity, "channels must be 1 to 4, got %u", channels);
        return 1;
    }
    if (width == 0 || height == 0) {
        snprintf(error, error_capacity, "image must not be empty (%ux%u)", width, height);
        return 1;
    }
    cpng_context context;
    context.error = error;
    context.error_capacity = error_capacity;
    cpng_writer writer = {NULL, 0, 0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &context, cpng_on_error, cpng_on_warning);
    if (!png) {
        snprintf(error, error_capacity, "out of memory");
        return 1;
    }
    png_infop info = png_create_info_struct(png);
    png_textp volatile chunks = NULL;
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        snprintf(error, error_capacity, "out of memory");
        return 1;
    }
    if (setjmp(context.jump)) {
        free(chunks);
        free(writer.data);
        png_destroy_write_struct(&png, &info);
        return 1;
    }
    png_set_write_fn(png, &writer, cpng_write, cpng_flush);
    png_set_compression_level(png, compression_level);
    png_set_IHDR(png, info, width, height, 8, color_type, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (text_count > 0) {
        chunks = calloc(text_count, sizeof(png_text));
        if (!chunks) png_error(png, "out of memory");
        for (size_t i = 0; i < text_count; i++) {
            chunks[i].compression = PNG_TEXT_COMPRESSION_NONE;
            chunks[i].key = (png_charp)texts[i].key;
            chunks[i].text = (png_charp)texts[i].text;
            chunks[i].text_length = strlen(texts[i].text);
        }
        png_set_text(png, info, chunks, (int)text_count);
    }
    png_write_info(png, info);
    size_t row_bytes = (size_t)width * channels;
    for (uint32_t y = 0; y < height; y++) {
        png_write_row(png, (png_const_bytep)(pixels + (size_t)y * row_bytes));
    }
    png_write_end(png, info);
    free(chunks);
    png_destroy_write_struct(&png, &info);
    *out = writer.data;
    *out_length = writer.length;
    return 0;
}

void cpng_free(void *pointer) { free(pointer); }
