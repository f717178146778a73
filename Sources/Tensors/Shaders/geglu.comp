// GEGLU: rows of width 2h split into (a, g); out = a · gelu(g) with GELU's erf form.
#version 450
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Push { uint count; uint half_; } p;

float erfApprox(float v) {
    float s = sign(v), av = abs(v);
    float t = 1.0 / (1.0 + 0.3275911 * av);
    float poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    return s * (1.0 - poly * exp(-av * av));
}

void main() {
    uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * 256u;
    if (i >= p.count) return;
    uint row = i / p.half_, column = i % p.half_;
    float a = x[row * 2u * p.half_ + column], g = x[row * 2u * p.half_ + p.half_ + column];
    y[i] = a * 0.5 * g * (1.0 + erfApprox(g * 0.70710678118654752));
}
