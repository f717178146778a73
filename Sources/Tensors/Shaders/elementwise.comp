// Element-by-element kernels. Unary: 0 SiLU, 1 GELU (erf form), 2 scale by alpha, 6 quick GELU (x·σ(1.702x)). Binary with b broadcast as
// b[(i / inner) % bCount] (same shape, per channel of NCHW, or per feature of rows): 3 add, 4 multiply, 5 subtract.
#version 450
layout(local_size_x = 256) in;
layout(std430, binding = 0) readonly buffer A { float a[]; };
layout(std430, binding = 1) readonly buffer B { float b[]; };
layout(std430, binding = 2) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Push { uint count; uint op; uint inner; uint bCount; float alpha; } p;

// GLSL has no erf: Abramowitz & Stegun 7.1.26, within 1.5e-7 of it.
float erfApprox(float x) {
    float s = sign(x), ax = abs(x);
    float t = 1.0 / (1.0 + 0.3275911 * ax);
    float poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    return s * (1.0 - poly * exp(-ax * ax));
}

void main() {
    uint i = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * 256u;
    if (i >= p.count) return;
    float x = a[i];
    if (p.op == 0u) y[i] = x / (1.0 + exp(-x));
    else if (p.op == 1u) y[i] = 0.5 * x * (1.0 + erfApprox(x * 0.70710678118654752));
    else if (p.op == 2u) y[i] = x * p.alpha;
    else if (p.op == 6u) y[i] = x / (1.0 + exp(-1.702 * x));
    else {
        float other = b[(i / p.inner) % p.bCount];
        y[i] = p.op == 3u ? x + other : (p.op == 4u ? x * other : x - other);
    }
}
