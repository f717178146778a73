// A dense layer, y[m, n] = x[m, k] · w[n, k]ᵀ + bias[n]: 16×16 output tiles, both operands staged through shared
// memory 16 inputs at a time. Weights are halves packed two to a uint (no 16-bit storage feature needed); sums in f32.
#version 450
layout(local_size_x = 16, local_size_y = 16) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer W { uint w[]; };
layout(std430, binding = 2) readonly buffer Bias { float bias[]; };
layout(std430, binding = 3) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Push { uint m; uint n; uint k; uint hasBias; } p;

shared float tileX[16][17];
shared float tileW[16][17];

float weight(uint i) {
    vec2 pair = unpackHalf2x16(w[i >> 1]);
    return (i & 1u) == 0u ? pair.x : pair.y;
}

void main() {
    uint lx = gl_LocalInvocationID.x, ly = gl_LocalInvocationID.y;
    uint rowBase = gl_WorkGroupID.y * 16u, columnBase = gl_WorkGroupID.x * 16u;
    float sum = 0.0;
    for (uint t = 0u; t < p.k; t += 16u) {
        uint inner = t + lx;
        tileX[ly][lx] = (rowBase + ly < p.m && inner < p.k) ? x[(rowBase + ly) * p.k + inner] : 0.0;
        tileW[ly][lx] = (columnBase + ly < p.n && inner < p.k) ? weight((columnBase + ly) * p.k + inner) : 0.0;
        barrier();
        for (uint j = 0u; j < 16u; j++) sum += tileX[ly][j] * tileW[lx][j];
        barrier();
    }
    uint row = rowBase + ly, column = columnBase + lx;
    if (row < p.m && column < p.n) y[row * p.n + column] = sum + (p.hasBias != 0u ? bias[column] : 0.0);
}
