// Multi-head attention softmax(q·kᵀ/√d)·v, fused flash-style: each invocation owns one query of one head and walks
// the keys in tiles staged through shared memory, keeping a running maximum and sum (online softmax), so no score
// matrix is ever stored. q, k [B, N, H·d], v [B, Nk, H·dv] → [B, Nq, H·dv]; d, dv ≤ MAX_DIM.
// Included by attention.comp (heads up to 128 wide) and attention_wide.comp (up to 512, fewer keys per tile, so
// that the tiles fit 32 KiB of shared memory).
layout(local_size_x = 64) in;
layout(std430, binding = 0) readonly buffer Q { float q[]; };
layout(std430, binding = 1) readonly buffer K { float k[]; };
layout(std430, binding = 2) readonly buffer V { float v[]; };
layout(std430, binding = 3) writeonly buffer O { float o[]; };
layout(push_constant) uniform Push { uint queries; uint keys; uint heads; uint dim; uint valueDim; uint causal; float scale; } p;

shared float keyTile[TILE * MAX_DIM];
shared float valueTile[TILE * MAX_DIM];

void main() {
    uint lid = gl_LocalInvocationID.x;
    uint query = gl_GlobalInvocationID.x, head = gl_WorkGroupID.y, batch = gl_WorkGroupID.z;
    bool live = query < p.queries;
    float row[MAX_DIM];
    float accumulator[MAX_DIM];
    uint queryBase = ((batch * p.queries + query) * p.heads + head) * p.dim;
    for (uint j = 0u; j < p.dim; j++) row[j] = live ? q[queryBase + j] * p.scale : 0.0;
    for (uint j = 0u; j < p.valueDim; j++) accumulator[j] = 0.0;
    float largest = -1.0e30, total = 0.0;
    uint keyEnd = p.causal != 0u ? min(p.keys, gl_WorkGroupID.x * 64u + 64u) : p.keys;
    for (uint start = 0u; start < keyEnd; start += TILE) {
        for (uint i = lid; i < TILE * p.dim; i += 64u) {
            uint kk = i / p.dim, j = i % p.dim;
            keyTile[kk * MAX_DIM + j] = start + kk < p.keys ? k[((batch * p.keys + start + kk) * p.heads + head) * p.dim + j] : 0.0;
        }
        for (uint i = lid; i < TILE * p.valueDim; i += 64u) {
            uint kk = i / p.valueDim, j = i % p.valueDim;
            valueTile[kk * MAX_DIM + j] =
                start + kk < p.keys ? v[((batch * p.keys + start + kk) * p.heads + head) * p.valueDim + j] : 0.0;
        }
        barrier();
        if (live) {
            for (uint kk = 0u; kk < TILE; kk++) {
                uint key = start + kk;
                if (key >= p.keys || (p.causal != 0u && key > query)) break;
                float score = 0.0;
                for (uint j = 0u; j < p.dim; j++) score += row[j] * keyTile[kk * MAX_DIM + j];
                float next = max(largest, score);
                float correction = exp(largest - next), weight = exp(score - next);
                total = total * correction + weight;
                for (uint j = 0u; j < p.valueDim; j++)
                    accumulator[j] = accumulator[j] * correction + weight * valueTile[kk * MAX_DIM + j];
                largest = next;
            }
        }
        barrier();
    }
    if (!live) return;
    uint outBase = ((batch * p.queries + query) * p.heads + head) * p.valueDim;
    for (uint j = 0u; j < p.valueDim; j++) o[outBase + j] = accumulator[j] / total;
}
