// Softmax over the last dimension: one workgroup per row; the row's maximum, then the sum of exponentials.
#version 450
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Push { uint width; } p;

shared float partial[256];

void main() {
    uint lid = gl_LocalInvocationID.x;
    uint base = gl_WorkGroupID.x * p.width;
    float largest = -3.0e38;
    for (uint i = lid; i < p.width; i += 256u) largest = max(largest, x[base + i]);
    partial[lid] = largest;
    barrier();
    for (uint half_ = 128u; half_ > 0u; half_ >>= 1) {
        if (lid < half_) partial[lid] = max(partial[lid], partial[lid + half_]);
        barrier();
    }
    largest = partial[0];
    barrier();
    float sum = 0.0;
    for (uint i = lid; i < p.width; i += 256u) sum += exp(x[base + i] - largest);
    partial[lid] = sum;
    barrier();
    for (uint half_ = 128u; half_ > 0u; half_ >>= 1) {
        if (lid < half_) partial[lid] += partial[lid + half_];
        barrier();
    }
    float scale = 1.0 / partial[0];
    for (uint i = lid; i < p.width; i += 256u) y[base + i] = exp(x[base + i] - largest) * scale;
}
