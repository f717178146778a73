// Convolution as an implicit GEMM: per image, out[o, pixel] = Σ_k w[o, k] · patch[k, pixel] with k = (c, ky, kx);
// the patch tile is gathered from the input as it is staged (no im2col buffer). Weights are packed halves.
#version 450
layout(local_size_x = 16, local_size_y = 16) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer W { uint w[]; };
layout(std430, binding = 2) readonly buffer Bias { float bias[]; };
layout(std430, binding = 3) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Push {
    uint channels; uint height; uint width; uint outChannels; uint kh; uint kw;
    uint outHeight; uint outWidth; uint stride; uint padding; uint hasBias;
} p;

shared float tileW[16][17];
shared float tileX[16][17];

float weight(uint i) {
    vec2 pair = unpackHalf2x16(w[i >> 1]);
    return (i & 1u) == 0u ? pair.x : pair.y;
}

void main() {
    uint lx = gl_LocalInvocationID.x, ly = gl_LocalInvocationID.y;
    uint image = gl_WorkGroupID.z;
    uint pixels = p.outHeight * p.outWidth;
    uint window = p.kh * p.kw;
    uint depth = p.channels * window;
    uint outBase = gl_WorkGroupID.y * 16u, pixelBase = gl_WorkGroupID.x * 16u;
    uint pixel = pixelBase + lx;
    int oy = int(pixel / p.outWidth), ox = int(pixel % p.outWidth);
    float sum = 0.0;
    for (uint t = 0u; t < depth; t += 16u) {
        uint o = outBase + ly, kw = t + lx;
        tileW[ly][lx] = (o < p.outChannels && kw < depth) ? weight(o * depth + kw) : 0.0;
        uint kx = t + ly;
        float value = 0.0;
        if (kx < depth && pixel < pixels) {
            uint c = kx / window, r = kx % window;
            int iy = oy * int(p.stride) + int(r / p.kw) - int(p.padding);
            int ix = ox * int(p.stride) + int(r % p.kw) - int(p.padding);
            if (iy >= 0 && ix >= 0 && iy < int(p.height) && ix < int(p.width))
                value = x[((image * p.channels + c) * p.height + uint(iy)) * p.width + uint(ix)];
        }
        tileX[ly][lx] = value;
        barrier();
        for (uint j = 0u; j < 16u; j++) sum += tileW[ly][j] * tileX[j][lx];
        barrier();
    }
    uint o = outBase + ly;
    if (o < p.outChannels && pixel < pixels)
        y[(image * p.outChannels + o) * pixels + pixel] = sum + (p.hasBias != 0u ? bias[o] : 0.0);
}
