// act.metal: element-wise kernels: embedding rows, residual add, SiLU-multiply.
#include "common.h"
#include "args.h"

// embed_q1 writes out (n, cols) = the dequantised rows tokens[t] of W: ±d, exactly.
// Go twin: runtime/q1.Matrix.DequantRow (runtime.Model.Embedding).
//
// Dispatch: one thread per output element, threadgroups (ceil(cols / ELT_THREADS), n).
kernel void embed_q1(
        constant Q1Args & args    [[buffer(0)]],
        device const uchar * bits   [[buffer(1)]],
        device const uchar * scales [[buffer(2)]],
        device const int   * tokens [[buffer(3)]],
        device       float * out    [[buffer(4)]],
        THREAD_ARGS) {
    const uint c = tgpig.x * ntg.x + tpitg.x;
    const uint t = tgpig.y;
    if (c >= args.w.cols) {
        return;
    }
    const uint r = uint(tokens[t]);
    const uint g = c / QK1;
    const uint j = c % QK1;
    device const uchar * sb = bits + args.w.bit_off + q1_block(r, g, args.w.groups, args.w.bit_stride);
    const float d = q1_scale(scales + args.w.scale_off + q1_block(r, g, args.w.groups, args.w.scale_stride), args.w.scale_kind);
    out[ulong(t) * args.w.cols + c] = ((sb[j / 8] >> (j % 8)) & 1) ? d : -d;
}

// add_f32 computes dst[i] += src[i] (the residual connection). Go twin: runtime/cpu.Add.
//
// Dispatch: one thread per element, threadgroups ceil(count / ELT_THREADS).
kernel void add_f32(
        constant EltArgs & args [[buffer(0)]],
        device       float * dst [[buffer(1)]],
        device const float * src [[buffer(2)]],
        THREAD_ARGS) {
    const uint i = tgpig.x * ntg.x + tpitg.x;
    if (i < args.count) {
        dst[i] += src[i];
    }
}

// silu_mul computes out[i] = silu(gate[i]) · up[i] with silu(z) = z / (1 + e^−z) (the SwiGLU
// MLP). out may alias gate or up. Go twin: runtime/cpu.SiluMul.
//
// Dispatch: one thread per element, threadgroups ceil(count / ELT_THREADS).
kernel void silu_mul(
        constant EltArgs & args [[buffer(0)]],
        device const float * gate [[buffer(1)]],
        device const float * up   [[buffer(2)]],
        device       float * out  [[buffer(3)]],
        THREAD_ARGS) {
    const uint i = tgpig.x * ntg.x + tpitg.x;
    if (i < args.count) {
        const float g = gate[i];
        out[i] = g / (1.0f + exp(-g)) * up[i];
    }
}
