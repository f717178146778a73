// A small C face on Vulkan compute. The loader (libvulkan.so.1) is opened at run time with dlopen, so the
// binary starts, and reports "no Vulkan", on hosts without it; Swift sees only opaque handles and plain
// structs, never Vulkan's own types.
#ifndef CVULKAN_H
#define CVULKAN_H

#include <stddef.h>
#include <stdint.h>

/// What one physical device offers for compute.
typedef struct {
    char name[256];
    char driver[512];
    /// 0 other, 1 integrated GPU, 2 discrete GPU, 3 virtual GPU, 4 CPU (VkPhysicalDeviceType).
    int32_t type;
    uint32_t vendor_id;
    uint32_t api_version;
    /// The largest device-local heap, in bytes.
    uint64_t memory_bytes;
    uint32_t subgroup_size;
    uint32_t max_shared_memory;
    uint32_t max_workgroup_invocations;
    /// Whether shaders may use 16-bit floats in arithmetic and 16-bit storage buffers.
    int32_t shader_float16;
    int32_t storage_16bit;
    /// Cooperative-matrix shapes (VK_NV_cooperative_matrix with float16 inputs): M, N, K each.
    uint32_t cooperative_shape_count;
    uint32_t cooperative_shapes[16][3];
} cv_device_info;

typedef struct cv_context cv_context;
typedef struct cv_buffer cv_buffer;
typedef struct cv_pipeline cv_pipeline;

/// Opens the loader and creates an instance (once per process). Returns 0, or writes why not into `error`.
int cv_load(char *error, size_t error_capacity);
/// The number of physical devices (after cv_load succeeded).
uint32_t cv_device_count(void);
/// Describes device `index`. Returns 0 on success.
int cv_device_describe(uint32_t index, cv_device_info *out);

/// A logical device with one compute queue, a command buffer and a descriptor pool. NULL on failure (see `error`).
cv_context *cv_open(uint32_t index, char *error, size_t error_capacity);
void cv_close(cv_context *context);

/// A storage buffer of `bytes` bytes in host-visible memory (device-local where the device has such memory), mapped
/// for its whole life. NULL when the device is out of memory.
cv_buffer *cv_buffer_create(cv_context *context, uint64_t bytes);
void *cv_buffer_memory(cv_buffer *buffer);
void cv_buffer_destroy(cv_context *context, cv_buffer *buffer);

/// A compute pipeline from SPIR-V words, with `bindings` storage buffers (set 0, bindings 0…) and `push_bytes` bytes of
/// push constants. NULL on failure (see `error`).
cv_pipeline *cv_pipeline_create(cv_context *context, const uint32_t *code, size_t code_bytes, uint32_t bindings,
                                uint32_t push_bytes, char *error, size_t error_capacity);
void cv_pipeline_destroy(cv_context *context, cv_pipeline *pipeline);

/// Records one dispatch into the open command buffer (started on demand), after a barrier that makes every earlier
/// dispatch's writes visible. Returns 0, or non-zero when the descriptor pool is full (submit and record again).
int cv_dispatch(cv_context *context, cv_pipeline *pipeline, cv_buffer *const *buffers, uint32_t buffer_count,
                const void *push, uint32_t push_bytes, uint32_t groups_x, uint32_t groups_y, uint32_t groups_z);
/// Submits what was recorded and waits for it. Returns 0, or a VkResult.
int cv_submit(cv_context *context);

#endif
