// Vulkan compute through function pointers from a loader opened at run time (see cvulkan.h).
#define VK_NO_PROTOTYPES
#include "cvulkan.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vulkan/vulkan.h>

// Descriptor sets recorded between two submits; a full pool asks the caller to submit first.
#define CV_SETS_PER_SUBMIT 1024
#define CV_BINDINGS_MAX 8

#define CV_FUNCTIONS(X)                                                                                                \
    X(vkEnumeratePhysicalDevices) X(vkGetPhysicalDeviceProperties2) X(vkGetPhysicalDeviceFeatures2)                   \
    X(vkGetPhysicalDeviceMemoryProperties) X(vkGetPhysicalDeviceQueueFamilyProperties)                                \
    X(vkEnumerateDeviceExtensionProperties) X(vkCreateDevice) X(vkDestroyDevice) X(vkGetDeviceProcAddr)                \
    X(vkGetDeviceQueue) X(vkCreateBuffer) X(vkDestroyBuffer) X(vkGetBufferMemoryRequirements) X(vkAllocateMemory)      \
    X(vkFreeMemory) X(vkBindBufferMemory) X(vkMapMemory) X(vkCreateShaderModule) X(vkDestroyShaderModule)             \
    X(vkCreateDescriptorSetLayout) X(vkDestroyDescriptorSetLayout) X(vkCreatePipelineLayout)                          \
    X(vkDestroyPipelineLayout) X(vkCreateComputePipelines) X(vkDestroyPipeline) X(vkCreateDescriptorPool)             \
    X(vkDestroyDescriptorPool) X(vkResetDescriptorPool) X(vkAllocateDescriptorSets) X(vkUpdateDescriptorSets)          \
    X(vkCreateCommandPool) X(vkDestroyCommandPool) X(vkAllocateCommandBuffers) X(vkBeginCommandBuffer)                 \
    X(vkEndCommandBuffer) X(vkResetCommandBuffer) X(vkCmdBindPipeline) X(vkCmdBindDescriptorSets)                     \
    X(vkCmdPushConstants) X(vkCmdDispatch) X(vkCmdPipelineBarrier) X(vkCreateFence) X(vkDestroyFence)                \
    X(vkResetFences) X(vkWaitForFences) X(vkQueueSubmit) X(vkDeviceWaitIdle)

#define CV_DECLARE(name) static PFN_##name name;
CV_FUNCTIONS(CV_DECLARE)
static PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesNV cooperativeProperties;

static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;
static int load_status = -1;  // -1 not tried, 0 loaded, 1 failed
static char load_error[512];
static VkInstance instance;
static uint32_t physical_count;
static VkPhysicalDevice physical[16];

struct cv_context {
    VkPhysicalDevice physical;
    VkDevice device;
    VkQueue queue;
    uint32_t memory_type;
    VkCommandPool command_pool;
    VkCommandBuffer commands;
    VkDescriptorPool descriptors;
    VkFence fence;
    int recording;
    uint32_t sets_used;
};

struct cv_buffer {
    VkBuffer buffer;
    VkDeviceMemory memory;
    void *mapped;
    uint64_t bytes;
};

struct cv_pipeline {
    VkDescriptorSetLayout set_layout;
    VkPipelineLayout layout;
    VkPipeline pipeline;
    uint32_t bindings;
};

static void set_error(char *error, size_t capacity, const char *message, int code) {
    if (error && capacity) snprintf(error, capacity, "%s (VkResult %d)", message, code);
}

static int load_locked(void) {
    void *library = dlopen("libvulkan.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!library) library = dlopen("libvulkan.so", RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        snprintf(load_error, sizeof load_error,
                 "no Vulkan loader (libvulkan.so.1) on this host: install libvulkan1 and a driver "
                 "(mesa-vulkan-drivers, or the GPU vendor's)");
        return 1;
    }
    PFN_vkGetInstanceProcAddr getInstanceProcAddr = (PFN_vkGetInstanceProcAddr)dlsym(library, "vkGetInstanceProcAddr");
    PFN_vkCreateInstance createInstance =
        getInstanceProcAddr ? (PFN_vkCreateInstance)getInstanceProcAddr(NULL, "vkCreateInstance") : NULL;
    if (!createInstance) {
        snprintf(load_error, sizeof load_error, "libvulkan.so.1 has no vkCreateInstance: the loader is broken");
        return 1;
    }
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
                             .pApplicationName = "DiffusionFarm",
                             .apiVersion = VK_API_VERSION_1_1};
    VkInstanceCreateInfo info = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &app};
    VkResult result = createInstance(&info, NULL, &instance);
    if (result != VK_SUCCESS) {
        snprintf(load_error, sizeof load_error,
                 "vkCreateInstance failed (VkResult %d): no Vulkan driver is installed (ICD), or none works", result);
        return 1;
    }
#define CV_LOAD(name)                                                                                                  \
    name = (PFN_##name)getInstanceProcAddr(instance, #name);                                                           \
    if (!name) {                                                                                                       \
        snprintf(load_error, sizeof load_error, "the Vulkan loader lacks %s (Vulkan 1.1 is needed)", #name);           \
        return 1;                                                                                                      \
    }
    CV_FUNCTIONS(CV_LOAD)
    cooperativeProperties = (PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesNV)getInstanceProcAddr(
        instance, "vkGetPhysicalDeviceCooperativeMatrixPropertiesNV");
    physical_count = 16;
    result = vkEnumeratePhysicalDevices(instance, &physical_count, physical);
    if (result != VK_SUCCESS && result != VK_INCOMPLETE) {
        snprintf(load_error, sizeof load_error, "vkEnumeratePhysicalDevices failed (VkResult %d)", result);
        return 1;
    }
    return 0;
}

int cv_load(char *error, size_t error_capacity) {
    pthread_mutex_lock(&load_lock);
    if (load_status < 0) load_status = load_locked();
    pthread_mutex_unlock(&load_lock);
    if (load_status != 0 && error && error_capacity) snprintf(error, error_capacity, "%s", load_error);
    return load_status;
}

uint32_t cv_device_count(void) { return load_status == 0 ? physical_count : 0; }

static int has_extension(VkPhysicalDevice device, const char *name) {
    uint32_t count = 0;
    vkEnumerateDeviceExtensionProperties(device, NULL, &count, NULL);
    VkExtensionProperties *list = calloc(count ? count : 1, sizeof *list);
    vkEnumerateDeviceExtensionProperties(device, NULL, &count, list);
    int found = 0;
    for (uint32_t i = 0; i < count; i++) found |= strcmp(list[i].extensionName, name) == 0;
    free(list);
    return found;
}

int cv_device_describe(uint32_t index, cv_device_info *out) {
    if (load_status != 0 || index >= physical_count) return 1;
    memset(out, 0, sizeof *out);
    VkPhysicalDevice device = physical[index];
    VkPhysicalDeviceSubgroupProperties subgroup = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceDriverProperties driver = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES,
                                               .pNext = &subgroup};
    VkPhysicalDeviceProperties2 properties = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2,
                                              .pNext = &driver};
    vkGetPhysicalDeviceProperties2(device, &properties);
    snprintf(out->name, sizeof out->name, "%s", properties.properties.deviceName);
    snprintf(out->driver, sizeof out->driver, "%s %s", driver.driverName, driver.driverInfo);
    out->type = (int32_t)properties.properties.deviceType;
    out->vendor_id = properties.properties.vendorID;
    out->api_version = properties.properties.apiVersion;
    out->subgroup_size = subgroup.subgroupSize;
    out->max_shared_memory = properties.properties.limits.maxComputeSharedMemorySize;
    out->max_workgroup_invocations = properties.properties.limits.maxComputeWorkGroupInvocations;

    VkPhysicalDevice16BitStorageFeatures storage = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES};
    VkPhysicalDeviceShaderFloat16Int8Features half = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES, .pNext = &storage};
    VkPhysicalDeviceFeatures2 features = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &half};
    vkGetPhysicalDeviceFeatures2(device, &features);
    out->shader_float16 = half.shaderFloat16 != 0;
    out->storage_16bit = storage.storageBuffer16BitAccess != 0;

    VkPhysicalDeviceMemoryProperties memory;
    vkGetPhysicalDeviceMemoryProperties(device, &memory);
    for (uint32_t i = 0; i < memory.memoryHeapCount; i++) {
        if ((memory.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) && memory.memoryHeaps[i].size > out->memory_bytes)
            out->memory_bytes = memory.memoryHeaps[i].size;
    }

    if (cooperativeProperties && has_extension(device, VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME)) {
        uint32_t count = 0;
        cooperativeProperties(device, &count, NULL);
        VkCooperativeMatrixPropertiesNV *shapes = calloc(count ? count : 1, sizeof *shapes);
        for (uint32_t i = 0; i < count; i++) shapes[i].sType = VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_NV;
        cooperativeProperties(device, &count, shapes);
        for (uint32_t i = 0; i < count && out->cooperative_shape_count < 16; i++) {
            if (shapes[i].AType != VK_COMPONENT_TYPE_FLOAT16_NV) continue;
            uint32_t *shape = out->cooperative_shapes[out->cooperative_shape_count++];
            shape[0] = shapes[i].MSize;
            shape[1] = shapes[i].NSize;
            shape[2] = shapes[i].KSize;
        }
        free(shapes);
    }
    return 0;
}

cv_context *cv_open(uint32_t index, char *error, size_t error_capacity) {
    if (cv_load(error, error_capacity) != 0) return NULL;
    if (index >= physical_count) {
        char message[128];
        snprintf(message, sizeof message, "no Vulkan device %u: this host has %u (farm devices lists them)", index,
                 physical_count);
        set_error(error, error_capacity, message, 0);
        return NULL;
    }
    cv_context *context = calloc(1, sizeof *context);
    context->physical = physical[index];
    uint32_t family_count = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(context->physical, &family_count, NULL);
    VkQueueFamilyProperties families[32];
    if (family_count > 32) family_count = 32;
    vkGetPhysicalDeviceQueueFamilyProperties(context->physical, &family_count, families);
    uint32_t family = UINT32_MAX;
    for (uint32_t i = 0; i < family_count && family == UINT32_MAX; i++)
        if (families[i].queueFlags & VK_QUEUE_COMPUTE_BIT) family = i;
    if (family == UINT32_MAX) {
        set_error(error, error_capacity, "the device has no compute queue", 0);
        free(context);
        return NULL;
    }
    float priority = 1;
    VkDeviceQueueCreateInfo queue = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                     .queueFamilyIndex = family,
                                     .queueCount = 1,
                                     .pQueuePriorities = &priority};
    VkDeviceCreateInfo info = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, .queueCreateInfoCount = 1,
                               .pQueueCreateInfos = &queue};
    VkResult result = vkCreateDevice(context->physical, &info, NULL, &context->device);
    if (result != VK_SUCCESS) {
        set_error(error, error_capacity, "vkCreateDevice failed", result);
        free(context);
        return NULL;
    }
    vkGetDeviceQueue(context->device, family, 0, &context->queue);

    // Host-visible coherent memory, device-local too where there is such (integrated GPUs, CPUs, ReBAR).
    VkPhysicalDeviceMemoryProperties memory;
    vkGetPhysicalDeviceMemoryProperties(context->physical, &memory);
    VkMemoryPropertyFlags host = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    context->memory_type = UINT32_MAX;
    for (uint32_t i = 0; i < memory.memoryTypeCount; i++) {
        VkMemoryPropertyFlags flags = memory.memoryTypes[i].propertyFlags;
        if ((flags & host) != host) continue;
        if (context->memory_type == UINT32_MAX || (flags & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT)) context->memory_type = i;
        if (flags & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT) break;
    }

    VkCommandPoolCreateInfo pool = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                    .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                    .queueFamilyIndex = family};
    vkCreateCommandPool(context->device, &pool, NULL, &context->command_pool);
    VkCommandBufferAllocateInfo allocate = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                            .commandPool = context->command_pool,
                                            .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                            .commandBufferCount = 1};
    vkAllocateCommandBuffers(context->device, &allocate, &context->commands);
    VkDescriptorPoolSize size = {.type = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                 .descriptorCount = CV_SETS_PER_SUBMIT * CV_BINDINGS_MAX};
    VkDescriptorPoolCreateInfo descriptors = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                              .maxSets = CV_SETS_PER_SUBMIT,
                                              .poolSizeCount = 1,
                                              .pPoolSizes = &size};
    vkCreateDescriptorPool(context->device, &descriptors, NULL, &context->descriptors);
    VkFenceCreateInfo fence = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    vkCreateFence(context->device, &fence, NULL, &context->fence);
    return context;
}

void cv_close(cv_context *context) {
    if (!context) return;
    vkDeviceWaitIdle(context->device);
    vkDestroyFence(context->device, context->fence, NULL);
    vkDestroyDescriptorPool(context->device, context->descriptors, NULL);
    vkDestroyCommandPool(context->device, context->command_pool, NULL);
    vkDestroyDevice(context->device, NULL);
    free(context);
}

cv_buffer *cv_buffer_create(cv_context *context, uint64_t bytes) {
    if (context->memory_type == UINT32_MAX) return NULL;
    cv_buffer *buffer = calloc(1, sizeof *buffer);
    buffer->bytes = bytes ? bytes : 4;
    VkBufferCreateInfo info = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
                               .size = buffer->bytes,
                               .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT,
                               .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    if (vkCreateBuffer(context->device, &info, NULL, &buffer->buffer) != VK_SUCCESS) {
        free(buffer);
        return NULL;
    }
    VkMemoryRequirements needs;
    vkGetBufferMemoryRequirements(context->device, buffer->buffer, &needs);
    VkMemoryAllocateInfo allocate = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                                     .allocationSize = needs.size,
                                     .memoryTypeIndex = context->memory_type};
    if (vkAllocateMemory(context->device, &allocate, NULL, &buffer->memory) != VK_SUCCESS) {
        vkDestroyBuffer(context->device, buffer->buffer, NULL);
        free(buffer);
        return NULL;
    }
    vkBindBufferMemory(context->device, buffer->buffer, buffer->memory, 0);
    vkMapMemory(context->device, buffer->memory, 0, VK_WHOLE_SIZE, 0, &buffer->mapped);
    return buffer;
}

void *cv_buffer_memory(cv_buffer *buffer) { return buffer->mapped; }

void cv_buffer_destroy(cv_context *context, cv_buffer *buffer) {
    if (!buffer) return;
    vkDestroyBuffer(context->device, buffer->buffer, NULL);
    vkFreeMemory(context->device, buffer->memory, NULL);
    free(buffer);
}

cv_pipeline *cv_pipeline_create(cv_context *context, const uint32_t *code, size_t code_bytes, uint32_t bindings,
                                uint32_t push_bytes, char *error, size_t error_capacity) {
    if (bindings > CV_BINDINGS_MAX) {
        set_error(error, error_capacity, "too many buffer bindings", 0);
        return NULL;
    }
    cv_pipeline *pipeline = calloc(1, sizeof *pipeline);
    pipeline->bindings = bindings;
    VkDescriptorSetLayoutBinding slots[CV_BINDINGS_MAX];
    for (uint32_t i = 0; i < bindings; i++) {
        slots[i] = (VkDescriptorSetLayoutBinding){.binding = i,
                                                  .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                                  .descriptorCount = 1,
                                                  .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT};
    }
    VkDescriptorSetLayoutCreateInfo set = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                           .bindingCount = bindings,
                                           .pBindings = slots};
    vkCreateDescriptorSetLayout(context->device, &set, NULL, &pipeline->set_layout);
    VkPushConstantRange range = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .size = push_bytes};
    VkPipelineLayoutCreateInfo layout = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                                         .setLayoutCount = 1,
                                         .pSetLayouts = &pipeline->set_layout,
                                         .pushConstantRangeCount = push_bytes ? 1 : 0,
                                         .pPushConstantRanges = &range};
    vkCreatePipelineLayout(context->device, &layout, NULL, &pipeline->layout);
    VkShaderModuleCreateInfo module_info = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                            .codeSize = code_bytes,
                                            .pCode = code};
    VkShaderModule module;
    VkResult result = vkCreateShaderModule(context->device, &module_info, NULL, &module);
    if (result != VK_SUCCESS) {
        set_error(error, error_capacity, "vkCreateShaderModule failed", result);
        cv_pipeline_destroy(context, pipeline);
        return NULL;
    }
    VkComputePipelineCreateInfo info = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                  .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                  .module = module,
                  .pName = "main"},
        .layout = pipeline->layout};
    result = vkCreateComputePipelines(context->device, VK_NULL_HANDLE, 1, &info, NULL, &pipeline->pipeline);
    vkDestroyShaderModule(context->device, module, NULL);
    if (result != VK_SUCCESS) {
        set_error(error, error_capacity, "vkCreateComputePipelines failed", result);
        cv_pipeline_destroy(context, pipeline);
        return NULL;
    }
    return pipeline;
}

void cv_pipeline_destroy(cv_context *context, cv_pipeline *pipeline) {
    if (!pipeline) return;
    if (pipeline->pipeline) vkDestroyPipeline(context->device, pipeline->pipeline, NULL);
    if (pipeline->layout) vkDestroyPipelineLayout(context->device, pipeline->layout, NULL);
    if (pipeline->set_layout) vkDestroyDescriptorSetLayout(context->device, pipeline->set_layout, NULL);
    free(pipeline);
}

int cv_dispatch(cv_context *context, cv_pipeline *pipeline, cv_buffer *const *buffers, uint32_t buffer_count,
                const void *push, uint32_t push_bytes, uint32_t groups_x, uint32_t groups_y, uint32_t groups_z) {
    if (context->sets_used >= CV_SETS_PER_SUBMIT || buffer_count != pipeline->bindings) return 1;
    VkDescriptorSetAllocateInfo allocate = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                            .descriptorPool = context->descriptors,
                                            .descriptorSetCount = 1,
                                            .pSetLayouts = &pipeline->set_layout};
    VkDescriptorSet set;
    if (vkAllocateDescriptorSets(context->device, &allocate, &set) != VK_SUCCESS) return 1;
    context->sets_used++;
    VkDescriptorBufferInfo infos[CV_BINDINGS_MAX];
    VkWriteDescriptorSet writes[CV_BINDINGS_MAX];
    for (uint32_t i = 0; i < buffer_count; i++) {
        infos[i] = (VkDescriptorBufferInfo){.buffer = buffers[i]->buffer, .offset = 0, .range = VK_WHOLE_SIZE};
        writes[i] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
                                           .dstSet = set,
                                           .dstBinding = i,
                                           .descriptorCount = 1,
                                           .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                           .pBufferInfo = &infos[i]};
    }
    vkUpdateDescriptorSets(context->device, buffer_count, writes, 0, NULL);
    if (!context->recording) {
        VkCommandBufferBeginInfo begin = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                          .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
        vkBeginCommandBuffer(context->commands, &begin);
        context->recording = 1;
    } else {
        // Each dispatch may read what the one before wrote; a full barrier keeps the order simple and correct.
        VkMemoryBarrier barrier = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                                   .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
                                   .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT};
        vkCmdPipelineBarrier(context->commands, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                             VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &barrier, 0, NULL, 0, NULL);
    }
    vkCmdBindPipeline(context->commands, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline->pipeline);
    vkCmdBindDescriptorSets(context->commands, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline->layout, 0, 1, &set, 0, NULL);
    if (push_bytes) vkCmdPushConstants(context->commands, pipeline->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, push_bytes, push);
    vkCmdDispatch(context->commands, groups_x, groups_y, groups_z);
    return 0;
}

int cv_submit(cv_context *context) {
    if (!context->recording) return 0;
    VkMemoryBarrier barrier = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                               .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
                               .dstAccessMask = VK_ACCESS_HOST_READ_BIT};
    vkCmdPipelineBarrier(context->commands, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1,
                         &barrier, 0, NULL, 0, NULL);
    vkEndCommandBuffer(context->commands);
    context->recording = 0;
    VkSubmitInfo submit = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1,
                           .pCommandBuffers = &context->commands};
    VkResult result = vkQueueSubmit(context->queue, 1, &submit, context->fence);
    if (result == VK_SUCCESS) result = vkWaitForFences(context->device, 1, &context->fence, VK_TRUE, UINT64_MAX);
    vkResetFences(context->device, 1, &context->fence);
    vkResetCommandBuffer(context->commands, 0);
    vkResetDescriptorPool(context->device, context->descriptors, 0);
    context->sets_used = 0;
    return result == VK_SUCCESS ? 0 : (int)result;
}
