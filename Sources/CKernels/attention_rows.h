// Attention over many keys (self-attention at 4 096 tokens), one block of CK_FLASH_ROWS (16)
// queries at a time with everything in cache: Q·Kᵀ for the block into a 16-row score buffer
// (256 KB at 4 096 keys: the core's L2; 32 rows ran 4 % slower), softmax along each row, then
// P·V accumulated into a 16-row output. K and V are packed once per head (`ck_flash_pack`): K as panels of 16 keys
// (a vector row per dimension) and V as rows padded to whole vectors, so both products run
// register blocks of FMAs from contiguous loads. It replaces two single-threaded sgemm calls
// per tile, whose 40-deep (head width) products and packing ran at about 60 % of sgemm.
//
// Included by ckernels.c once per instruction set with CK_SUFFIX, CK_TARGET, CK_QR (query
// rows per Q·Kᵀ register block: two vectors of keys each) and CK_PR (query rows per P·V
// register block: up to five vectors of output channels each) defined; it undefines them at the end.

#define CK_JOIN2(a, b) a##_##b
#define CK_JOIN(a, b) CK_JOIN2(a, b)
#define CK_FN(name) CK_JOIN(name, CK_SUFFIX)

// Scores s[r][16p..16p+15] = scale · qs[r]·k for the block's rows of qs (row stride d) and panels 0..<panels.
CK_TARGET static void CK_FN(ck_flash_qk)(const float *qs, const float *kp, float *s, size_t lds, size_t panels,
                                          size_t d, float scale) {
    for (size_t p = 0; p < panels; p++) {
        const float *panel = kp + p * 16 * d;
        for (size_t r0 = 0; r0 < CK_FLASH_ROWS; r0 += CK_QR) {
            v8f acc[CK_QR][2];
            for (int r = 0; r < CK_QR; r++) acc[r][0] = acc[r][1] = (v8f){0};
            const float *rows = qs + r0 * d;
            for (size_t t = 0; t < d; t++) {
                v8f k0, k1;
                memcpy(&k0, panel + t * 16, sizeof k0);
                memcpy(&k1, panel + t * 16 + 8, sizeof k1);
                for (int r = 0; r < CK_QR; r++) {
                    float q = rows[r * d + t];
                    acc[r][0] += q * k0;
                    acc[r][1] += q * k1;
                }
            }
            for (int r = 0; r < CK_QR; r++) {
                v8f a = acc[r][0] * scale, b = acc[r][1] * scale;
                memcpy(s + (r0 + r) * lds + p * 16, &a, sizeof a);
                memcpy(s + (r0 + r) * lds + p * 16 + 8, &b, sizeof b);
            }
        }
    }
}

// o[r][c0..c0+8·nc) += Σ_j s[r][j]·vp[j][c0..] over keys j0..<j1, for the block's rows; nc is a
// constant 1…5 after inlining, so the block's accumulators stay in registers.
CK_TARGET static inline __attribute__((always_inline)) void CK_FN(ck_flash_pv)(
    const float *s, size_t lds, const float *vp, size_t dvp, float *o, size_t j0, size_t j1, size_t c0, const int nc) {
    for (size_t r0 = 0; r0 < CK_FLASH_ROWS; r0 += CK_PR) {
        v8f acc[CK_PR][5];
        for (int r = 0; r < CK_PR; r++)
            for (int c = 0; c < nc; c++) memcpy(&acc[r][c], o + (r0 + r) * dvp + c0 + 8 * c, sizeof(v8f));
        for (size_t j = j0; j < j1; j++) {
            v8f v[5];
            for (int c = 0; c < nc; c++) memcpy(&v[c], vp + j * dvp + c0 + 8 * c, sizeof(v8f));
            for (int r = 0; r < CK_PR; r++) {
                float p = s[(r0 + r) * lds + j];
                for (int c = 0; c < nc; c++) acc[r][c] += p * v[c];
            }
        }
        for (int r = 0; r < CK_PR; r++)
            for (int c = 0; c < nc; c++) memcpy(o + (r0 + r) * dvp + c0 + 8 * c, &acc[r][c], sizeof(v8f));
    }
}

CK_TARGET static void CK_FN(ck_flash_rows)(const float *q, size_t ldq, const float *kp, const float *vp,
                                            float *out, size_t ldo, size_t rows, size_t first, int causal,
                                            size_t nk, size_t d, size_t dv, float scale, float *scratch) {
    size_t nkp = (nk + 15) / 16 * 16, dvp = (dv + 7) / 8 * 8;
    float *qs = scratch, *s = qs + CK_FLASH_ROWS * d, *o = s + CK_FLASH_ROWS * nkp, *sums = o + CK_FLASH_ROWS * dvp;
    for (size_t r0 = 0; r0 < rows; r0 += CK_FLASH_ROWS) {
        size_t n = rows - r0 < CK_FLASH_ROWS ? rows - r0 : CK_FLASH_ROWS;
        for (size_t r = 0; r < CK_FLASH_ROWS; r++) {
            if (r < n) memcpy(qs + r * d, q + (r0 + r) * ldq, d * sizeof(float));
            else memset(qs + r * d, 0, d * sizeof(float));
        }
        // Causal: the block's last query sees keys up to its own position, no further.
        size_t keys = causal ? first + r0 + n : nk;
        if (keys > nk) keys = nk;
        size_t panels = (keys + 15) / 16, used = panels * 16;
        CK_FN(ck_flash_qk)(qs, kp, s, nkp, panels, d, scale);
        for (size_t r = 0; r < CK_FLASH_ROWS; r++) {
            float *line = s + r * nkp;
            size_t visible = r >= n ? 0 : causal ? first + r0 + r + 1 : nk;
            if (visible > nk) visible = nk;
            sums[r] = visible ? CK_FN(ck_exp_row)(line, visible) : 1;
            if (visible < used) memset(line + visible, 0, (used - visible) * sizeof(float));
        }
        memset(o, 0, CK_FLASH_ROWS * dvp * sizeof(float));
        // Keys in blocks of 128, so that the block's rows of V stay in L1 for all the block's queries.
        for (size_t j0 = 0; j0 < used; j0 += 128) {
            size_t j1 = j0 + 128 < used ? j0 + 128 : used;
            for (size_t c0 = 0; c0 < dvp; c0 += 40) {
                switch ((dvp - c0) / 8) {
                case 1: CK_FN(ck_flash_pv)(s, nkp, vp, dvp, o, j0, j1, c0, 1); break;
                case 2: CK_FN(ck_flash_pv)(s, nkp, vp, dvp, o, j0, j1, c0, 2); break;
                case 3: CK_FN(ck_flash_pv)(s, nkp, vp, dvp, o, j0, j1, c0, 3); break;
                case 4: CK_FN(ck_flash_pv)(s, nkp, vp, dvp, o, j0, j1, c0, 4); break;
                default: CK_FN(ck_flash_pv)(s, nkp, vp, dvp, o, j0, j1, c0, 5); break;
                }
            }
        }
        for (size_t r = 0; r < n; r++) {
            float inverse = 1.0f / sums[r];
            for (size_t c = 0; c < dv; c++) out[(r0 + r) * ldo + c] = o[r * dvp + c] * inverse;
        }
    }
}

#undef CK_FN
#undef CK_JOIN
#undef CK_JOIN2
#undef CK_SUFFIX
#undef CK_TARGET
#undef CK_QR
#undef CK_PR
