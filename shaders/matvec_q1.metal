// matvec_q1.metal: out = x · Wᵀ for a 1-bit matrix W, the model's every projection.
#include "common.h"
#include "args.h"

// matvec_q1 computes out (n, rows) = x (n, cols) · Wᵀ. Go twin: runtime/cpu.MatMul:
//
//   out[t][r] = Σ_g d[r,g] · (2·Σ_{j∈g, bit(r,j)=1} x[t][j] − Σ_{j∈g} x[t][j])
//
// which is Σ_j w[r,j]·x[t][j] with w = ±d: a set bit adds x, a clear bit subtracts it.
//
// Dispatch: threadgroups (ceil(rows / (MV_NR·MV_NSG)), ceil(n / MV_NT)), MV_NSG·32 threads.
// Simdgroup s of threadgroup (i, j) owns rows (i·MV_NSG + s)·MV_NR .. +MV_NR-1 and vectors
// j·MV_NT .. +MV_NT-1. Lane l reads the 16 weights (l%8)·16 .. +15 of group g ≡ l/8 (mod 4),
// so one pass of the simdgroup covers 4 groups (512 inputs); each lane loads its 16 inputs
// once per vector and reuses them for the MV_NR rows. The partial sums meet in simd_sum.
kernel void matvec_q1(
        constant Q1Args & args   [[buffer(0)]],
        device const uchar * bits   [[buffer(1)]],
        device const uchar * scales [[buffer(2)]],
        device const float * x      [[buffer(3)]],
        device       float * out    [[buffer(4)]],
        THREAD_ARGS) {
    const uint rows = args.w.rows;
    const uint cols = args.w.cols;
    const uint r0 = (tgpig.x * MV_NSG + sgitg) * MV_NR;
    if (r0 >= rows) {
        return; // the whole simdgroup leaves together
    }
    const uint t0 = tgpig.y * MV_NT;
    const uint nt = min(uint(MV_NT), args.n - t0);
    const uint slice = tiisg % 8;

    device const uchar * wb = bits + args.w.bit_off + 2 * slice;
    device const uchar * ws = scales + args.w.scale_off;

    float acc[MV_NR][MV_NT];
    for (uint r = 0; r < MV_NR; ++r) {
        for (uint t = 0; t < MV_NT; ++t) {
            acc[r][t] = 0.0f;
        }
    }

    for (uint g = tiisg / 8; g < args.w.groups; g += 4) {
        ushort mask[MV_NR];
        float d[MV_NR];
        for (uint r = 0; r < MV_NR; ++r) {
            const uint row = min(r0 + r, rows - 1); // rows past the end repeat the last; not stored
            device const uchar * sb = wb + q1_block(row, g, args.w.groups, args.w.bit_stride);
            mask[r] = ushort(sb[0]) | ushort(ushort(sb[1]) << 8);
            d[r] = q1_scale(ws + q1_block(row, g, args.w.groups, args.w.scale_stride), args.w.scale_kind);
        }
        for (uint t = 0; t < nt; ++t) {
            device const float * xp = x + ulong(t0 + t) * cols + g * QK1 + 16 * slice;
            float xs[16];
            float sum = 0.0f;
            for (uint i = 0; i < 16; ++i) {
                xs[i] = xp[i];
                sum += xs[i];
            }
            for (uint r = 0; r < MV_NR; ++r) {
                float set = 0.0f;
                for (uint i = 0; i < 16; ++i) {
                    set += select(0.0f, xs[i], bool((mask[r] >> i) & 1));
                }
                acc[r][t] += d[r] * (2.0f * set - sum);
            }
        }
    }

    for (uint r = 0; r < MV_NR; ++r) {
        for (uint t = 0; t < nt; ++t) {
            const float v = simd_sum(acc[r][t]);
            if (tiisg == 0 && r0 + r < rows) {
                out[ulong(t0 + t) * rows + r0 + r] = v;
            }
        }
    }
}
