// A small C face on libpng whose error path (longjmp) stays inside C, so that
// Swift callers get a status code and a message instead of a crash.
#ifndef CPNG_H
#define CPNG_H

#include <stddef.h>
#include <stdint.h>

/// One tEXt chunk: a Latin-1 keyword (1-79 bytes) and its text.
typedef struct {
    const char *key;
    const char *text;
} cpng_text;

/// A decoded image; release with cpng_image_free.
typedef struct {
    uint32_t width;
    uint32_t height;
    uint32_t channels;      // 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA
    uint8_t *pixels;        // width * height * channels bytes, rows top to bottom
    size_t text_count;
    cpng_text *texts;       // owned copies
} cpng_image;

/// Decodes a PNG held in memory into 8-bit samples. Returns 0 on success;
/// otherwise writes a message into `error` and returns non-zero.
/// Images wider or taller than `max_side`, or with more than `max_pixels`
/// pixels, are refused before any pixel memory is allocated.
int cpng_decode(const uint8_t *data, size_t length, uint32_t max_side, uint64_t max_pixels,
                cpng_image *out, char *error, size_t error_capacity);

/// Frees what cpng_decode allocated.
void cpng_image_free(cpng_image *image);

/// Encodes 8-bit samples (1-4 channels) as PNG with optional tEXt chunks.
/// On success returns 0 and hands back a malloc'd buffer in *out (free with cpng_free).
int cpng_encode(const uint8_t *pixels, uint32_t width, uint32_t height, uint32_t channels,
                const cpng_text *texts, size_t text_count, int compression_level,
                uint8_t **out, size_t *out_length, char *error, size_t error_capacity);

/// Frees a buffer returned by cpng_encode.
void cpng_free(void *pointer);

#endif
