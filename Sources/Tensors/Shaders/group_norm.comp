// Group normalisation (+ optional SiLU) of NCHW maps: one workgroup per (image, group), whose channels are one
// contiguous run; mean, then the biased variance around it (two passes, as the CPU backend), reduced in shared memory.
#version 450
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer Gamma { float gamma[]; };
layout(std430, binding = 2) readonly buffer Beta { float beta[]; };
layout(std430, binding = 3) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Push { uint groups; uint channels; uint spatial; float epsilon; uint silu; } p;

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
    uint group = gl_WorkGroupID.x % p.groups, image = gl_WorkGroupID.x / p.groups;
    uint perGroup = p.channels / p.groups;
    uint length = perGroup * p.spatial;
    uint base = (image * p.channels + group * perGroup) * p.spatial;
    float sum = 0.0;
    for (uint i = lid; i < length; i += 256u) sum += x[base + i];
    float mean = reduceSum(sum) / float(length);
    float squares = 0.0;
    for (uint i = lid; i < length; i += 256u) {
        float d = x[base + i] - mean;
        squares += d * d;
    }
    float inverse = inversesqrt(reduceSum(squares) / float(length) + p.epsilon);
    for (uint i = lid; i < length; i += 256u) {
        uint channel = group * perGroup + i / p.spatial;
        float v = (x[base + i] - mean) * inverse * gamma[channel] + beta[channel];
        y[base + i] = p.silu != 0u ? v / (1.0 + exp(-v)) : v;
    }
}
