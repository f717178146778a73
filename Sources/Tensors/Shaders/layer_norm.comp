// Layer normalisation over the last dimension: one workgroup per row, two-pass moments in shared memory.
#version 450
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer Gamma { float gamma[]; };
layout(std430, binding = 2) readonly buffer Beta { float beta[]; };
layout(std430, binding = 3) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Push { uint features; float epsilon; } p;

shared float partial[256];

float reduceSum(float value) {
    uint lid = gl_LocalInvocationID.x;
    partial[lid] = value;
    barrier();
    for (uint half_ = 128u; half_ > 0u; half_ >>= 1) {
        if (lid < half_) partial[lid] += partial[lid + half_];
        barrier();
    }
    float total = partial[0];
    barrier();
    return total;
}

void main() {
    uint lid = gl_LocalInvocationID.x;
    uint base = gl_WorkGroupID.x * p.features;
    float sum = 0.0;
    for (uint i = lid; i < p.features; i += 256u) sum += x[base + i];
    float mean = reduceSum(sum) / float(p.features);
    float squares = 0.0;
    for (uint i = lid; i < p.features; i += 256u) {
        float d = x[base + i] - mean;
        squares += d * d;
    }
    float inverse = inversesqrt(reduceSum(squares) / float(p.features) + p.epsilon);
    for (uint i = lid; i < p.features; i += 256u) y[base + i] = (x[base + i] - mean) * inverse * gamma[i] + beta[i];
}
