// Nearest-neighbour upsampling of NCHW planes by an integer factor.
#version 450
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Push { uint count; uint height; uint width; uint factor; } p;

void main() {
    uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * 256u;
    if (i >= p.count) return;
    uint outWidth = p.width * p.factor, outHeight = p.height * p.factor;
    uint plane = i / (outWidth * outHeight), r = i % (outWidth * outHeight);
    uint oy = r / outWidth, ox = r % outWidth;
    y[i] = x[(plane * p.height + oy / p.factor) * p.width + ox / p.factor];
}
