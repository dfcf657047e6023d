// flip.metal: the effect of candidate sign flips on a matmul output, without touching weights.
#include "common.h"
#include "args.h"

// flip_delta evaluates n_flips candidate flips of W against the unflipped output base (n, rows)
// = MatMul(W, x) of inputs x (n, cols): res[f][t] is what out[t][row_f] would be had flip f
// been applied. Go twin: runtime/cpu.FlipDelta, per candidate:
//
//   whole row (group < 0, col < 0): res = −base
//   group g (col < 0):              res = base − 2·d[row,g]·(2·Σ_{j∈g, bit=1} x[t][j] − Σ_{j∈g} x[t][j])
//   weight col:                     res = base − 2·w[row,col]·x[t][col]
//
// The sums run over j in order, as in the twin. res is (n_flips, n).
//
// Dispatch: one thread per (flip, vector), threadgroups ceil(n_flips·n / ELT_THREADS).
kernel void flip_delta(
        constant FlipArgs & args     [[buffer(0)]],
        device const uchar * bits    [[buffer(1)]],
        device const uchar * scales  [[buffer(2)]],
        device const float * x       [[buffer(3)]],
        device const float * base    [[buffer(4)]],
        device const FlipDesc * flips [[buffer(5)]],
        device       float * res     [[buffer(6)]],
        THREAD_ARGS) {
    const uint id = tgpig.x * ntg.x + tpitg.x;
    if (id >= args.n_flips * args.n) {
        return;
    }
    const uint f = id / args.n;
    const uint t = id % args.n;
    // Read the fields one by one: the clang check mode cannot copy a struct out of the device
    // address space (real MSL can).
    const int fgroup = flips[f].group;
    const int fcol = flips[f].col;
    const uint row = uint(flips[f].row);
    const float b = base[ulong(t) * args.w.rows + row];
    if (fgroup < 0 && fcol < 0) {
        res[id] = -b;
        return;
    }
    const uint g = fcol < 0 ? uint(fgroup) : uint(fcol) / QK1;
    device const uchar * sb = bits + args.w.bit_off + q1_block(row, g, args.w.groups, args.w.bit_stride);
    const float d = q1_scale(scales + args.w.scale_off + q1_block(row, g, args.w.groups, args.w.scale_stride), args.w.scale_kind);
    device const float * xg = x + ulong(t) * args.w.cols + g * QK1;
    if (fcol < 0) {
        float set = 0.0f;
        float total = 0.0f;
        for (uint j = 0; j < QK1; ++j) {
            total += xg[j];
            if ((sb[j / 8] >> (j % 8)) & 1) {
                set += xg[j];
            }
        }
        res[id] = b - 2.0f * d * (2.0f * set - total);
        return;
    }
    const uint j = uint(fcol) % QK1;
    const float w = ((sb[j / 8] >> (j % 8)) & 1) ? d : -d;
    res[id] = b - 2.0f * w * xg[j];
}
