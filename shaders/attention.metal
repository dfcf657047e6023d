// attention.metal: causal grouped-query attention over the KV cache (prefill and decode).
#include "common.h"
#include "args.h"

// attention computes, for query p (0 ≤ p < n, at position pos = ctx − n + p) and head h, with kv
// head kh = h / (heads / kv_heads):
//
//   score_t = (q·k_t) · scale for t ≤ pos;  out = Σ_t softmax(score)_t · v_t
//
// q and out are (n, heads, dim); k and v are (≥ ctx, kv_heads, dim), the cache from position 0.
// Go twin: runtime/cpu.Attention (an exact softmax); here one pass with a running maximum m and
// sum l (the "online" softmax): for each key, m' = max(m, s), rescale l and the output by
// e^(m−m'), then add e^(s−m') and e^(s−m')·v_t. The result is the same up to float rounding.
//
// Dispatch: threadgroups (heads, n), 32 threads (one simdgroup). Lane l holds elements
// l, l+32, ... of the head (dim ≤ ATT_MAX_DIM); the dot product meets in simd_sum, so every
// lane sees every score and the loop over keys stays uniform across the simdgroup.
kernel void attention(
        constant AttnArgs & args [[buffer(0)]],
        device const float * q   [[buffer(1)]],
        device const float * k   [[buffer(2)]],
        device const float * v   [[buffer(3)]],
        device       float * out [[buffer(4)]],
        THREAD_ARGS) {
    const uint h = tgpig.x;
    const uint p = tgpig.y;
    const uint dim = args.dim;
    const uint kh = h / (args.heads / args.kv_heads);
    const uint kv_stride = args.kv_heads * dim;
    const uint last = args.ctx - args.n + p; // attends to keys 0 .. last

    device const float * qh = q + (ulong(p) * args.heads + h) * dim;
    float qr[ATT_MAX_DIM / SIMD_WIDTH];
    float o[ATT_MAX_DIM / SIMD_WIDTH];
    for (uint j = 0; j < ATT_MAX_DIM / SIMD_WIDTH; ++j) {
        const uint i = tiisg + SIMD_WIDTH * j;
        qr[j] = i < dim ? qh[i] : 0.0f;
        o[j] = 0.0f;
    }

    float m = -FLT_MAX;
    float l = 0.0f;
    for (uint t = 0; t <= last; ++t) {
        device const float * kt = k + ulong(t) * kv_stride + kh * dim;
        device const float * vt = v + ulong(t) * kv_stride + kh * dim;
        float s = 0.0f;
        for (uint j = 0; j < ATT_MAX_DIM / SIMD_WIDTH; ++j) {
            const uint i = tiisg + SIMD_WIDTH * j;
            if (i < dim) {
                s += qr[j] * kt[i];
            }
        }
        s = simd_sum(s) * args.scale;
        const float m2 = max(m, s);
        const float rescale = exp(m - m2);
        const float e = exp(s - m2);
        l = l * rescale + e;
        for (uint j = 0; j < ATT_MAX_DIM / SIMD_WIDTH; ++j) {
            const uint i = tiisg + SIMD_WIDTH * j;
            if (i < dim) {
                o[j] = o[j] * rescale + e * vt[i];
            }
        }
        m = m2;
    }

    device float * oh = out + (ulong(p) * args.heads + h) * dim;
    const float inv = 1.0f / l;
    for (uint j = 0; j < ATT_MAX_DIM / SIMD_WIDTH; ++j) {
        const uint i = tiisg + SIMD_WIDTH * j;
        if (i < dim) {
            oh[i] = o[j] * inv;
        }
    }
}
