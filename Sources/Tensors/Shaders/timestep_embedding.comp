// Sinusoidal timestep embedding: angle = t · frequency[i] (frequencies from the host, in f32 as the CPU backend has
// them); [sin | cos], or [cos | sin] when flip is set; an odd dimension's last column stays as it was (zero).
#version 450
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer T { float t[]; };
layout(std430, binding = 1) readonly buffer F { float frequency[]; };
layout(std430, binding = 2) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Push { uint rows; uint half_; uint flip; uint dimension; } p;

void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i >= p.rows * p.half_) return;
    uint row = i / p.half_, j = i % p.half_;
    float angle = t[row] * frequency[j];
    uint base = row * p.dimension;
    y[base + (p.flip != 0u ? p.half_ + j : j)] = sin(angle);
    y[base + (p.flip != 0u ? j : p.half_ + j)] = cos(angle);
}
