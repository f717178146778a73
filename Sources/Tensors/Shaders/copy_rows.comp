// Copies rows of one tensor into a column range of another's rows: dst[r, offset + j] = src[r, j]. Concatenation
// along any axis is one dispatch per part (rows = product of the dimensions before the axis).
#version 450
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer Src { float src[]; };
layout(std430, binding = 1) writeonly buffer Dst { float dst[]; };
layout(push_constant) uniform Push { uint count; uint srcWidth; uint dstWidth; uint offset; } p;

void main() {
    uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * 256u;
    if (i >= p.count) return;
    dst[(i / p.srcWidth) * p.dstWidth + p.offset + i % p.srcWidth] = src[i];
}
