// norm.metal: RMS normalisation.
#include "common.h"
#include "args.h"

// rms_norm writes out[i] = x[i] / sqrt(mean(x²) + eps) · w[i] for each row of width elements.
// Go twin: runtime/cpu.RMSNorm (which accumulates the squares in float64; here float32). out may
// alias x: every thread reads its elements for the sum before the barrier and only then writes.
//
// Dispatch: threadgroups (rows), any multiple of 32 threads up to 1024; threadgroup memory 0
// holds one float per simdgroup.
kernel void rms_norm(
        constant NormArgs & args [[buffer(0)]],
        device const float * x   [[buffer(1)]],
        device const float * w   [[buffer(2)]],
        device       float * out [[buffer(3)]],
        TG_MEM(float, partial, 0),
        THREAD_ARGS) {
    const uint width = args.width;
    device const float * xr = x + ulong(tgpig.x) * width;
    device float * yr = out + ulong(tgpig.x) * width;

    float ss = 0.0f;
    for (uint i = tpitg.x; i < width; i += ntg.x) {
        ss += xr[i] * xr[i];
    }
    ss = simd_sum(ss);
    if (tiisg == 0) {
        partial[sgitg] = ss;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    float total = 0.0f;
    for (uint s = 0; s < ntg.x / SIMD_WIDTH; ++s) {
        total += partial[s];
    }
    const float scale = 1.0f / sqrt(total / float(width) + args.eps);
    for (uint i = tpitg.x; i < width; i += ntg.x) {
        yr[i] = xr[i] * scale * w[i];
    }
}
