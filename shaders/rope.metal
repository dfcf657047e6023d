// rope.metal: rotary position embedding, NeoX ("rotate half") layout.
#include "common.h"
#include "args.h"

// rope_neox rotates x (n, heads, dim) in place with tables cos, sin (n, dim/2) computed on the
// host by runtime/cpu.Rope.Tables (which folds in YaRN). Go twin: runtime/cpu.ApplyRope:
//
//   x'[i] = x[i]·cos θ_i − x[i+dim/2]·sin θ_i,  x'[i+dim/2] = x[i]·sin θ_i + x[i+dim/2]·cos θ_i
//
// Dispatch: one thread per pair, threadgroups ceil(n·heads·dim/2 / ELT_THREADS) of ELT_THREADS.
kernel void rope_neox(
        constant RopeArgs & args [[buffer(0)]],
        device       float * x   [[buffer(1)]],
        device const float * cs  [[buffer(2)]],
        device const float * sn  [[buffer(3)]],
        THREAD_ARGS) {
    const uint half_dim = args.dim / 2;
    const uint id = tgpig.x * ntg.x + tpitg.x;
    if (id >= args.n * args.heads * half_dim) {
        return;
    }
    const uint i = id % half_dim;
    const uint ph = id / half_dim; // p·heads + h
    const uint p = ph / args.heads;
    device float * v = x + ulong(ph) * args.dim;
    const float c = cs[p * half_dim + i];
    const float s = sn[p * half_dim + i];
    const float a = v[i];
    const float b = v[i + half_dim];
    v[i] = a * c - b * s;
    v[i + half_dim] = a * s + b * c;
}
