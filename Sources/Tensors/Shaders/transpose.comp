// Swaps the last two dimensions of a batch of matrices: [A, R, C] → [A, C, R] (channels-first maps ↔ token rows).
#version 450
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Push { uint count; uint rows; uint columns; } p;

void main() {
    uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * 256u;
    if (i >= p.count) return;
    uint plane = p.rows * p.columns;
    uint batch = i / plane, r = i % plane;
    uint column = r / p.rows, row = r % p.rows;  // i indexes the output [A, C, R]
    y[i] = x[batch * plane + row * p.columns + column];
}
