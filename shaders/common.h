// common.h: the 1-bit block layout, tuning constants and helpers shared by every kernel.
//
// A 1-bit matrix W (rows x cols, cols a multiple of 128) is read in place from the model file:
//
//   signs of group (r,g): bits   + bit_off   + (r*groups + g)*bit_stride,   16 bytes, LSB first
//   scale of group (r,g): scales + scale_off + (r*groups + g)*scale_stride, 2 bytes, little-endian
//
// GGUF Q1_0 stores both in one 18-byte block (block_q1_0 below: bit_stride = scale_stride = 18,
// bit_off = scale_off + 2); MLX stores sign words and a bias array = -d separately (bit_stride 16,
// scale_stride 2). Weight j of a group is +d if its bit is 1, else -d. The Go type is runtime/q1.Matrix.
#pragma once

#include <metal_stdlib>
using namespace metal;

#define QK1 128          // weights per group (one scale)
#define QK1_BYTES 16     // sign bytes per group

// The GGUF Q1_0 block: an fp16 scale d, then 128 sign bits.
struct block_q1_0 {
    half  d;
    uchar qs[QK1_BYTES];
};
static_assert(sizeof(block_q1_0) == 18, "a Q1_0 block is 18 bytes");

// Scale kinds, as runtime/q1.ScaleKind.
#define SCALE_F16     0  // d as IEEE binary16 (GGUF)
#define SCALE_NEG_F16 1  // -d as binary16 (MLX bias, fp16)
#define SCALE_NEG_BF16 2 // -d as bfloat16 (MLX bias, bf16)

// Apple GPUs run 32 threads per simdgroup; the host checks threadExecutionWidth == 32.
#define SIMD_WIDTH 32

// matvec_q1: MV_NR rows per simdgroup, MV_NSG simdgroups per threadgroup, MV_NT input vectors
// per threadgroup. Each lane owns a 16-weight slice (2 sign bytes) of one of 4 groups in flight.
#define MV_NR  4
#define MV_NSG 2
#define MV_NT  4

// attention: the head dimension is at most ATT_MAX_DIM (each lane keeps ATT_MAX_DIM/32 values).
#define ATT_MAX_DIM 256

// Threads per threadgroup of the element-wise kernels (add, silu_mul, rope, embed, flip).
#define ELT_THREADS 256

// Threadgroup memory: real MSL binds it with [[threadgroup(i)]]; the C++ shim has no such
// attribute, and its empty `threadgroup` macro would break the attribute's spelling.
#if defined(__METAL_VERSION__)
#define TG_MEM(T, name, i) threadgroup T * name [[threadgroup(i)]]
#else
#define TG_MEM(T, name, i) threadgroup T * name
#endif

// The built-in indices every kernel receives (1-D threadgroups: simdgroup s holds threads
// 32s .. 32s+31).
#define THREAD_ARGS                                          \
    uint3 tgpig [[threadgroup_position_in_grid]],            \
    uint3 tpitg [[thread_position_in_threadgroup]],          \
    uint3 ntg   [[threads_per_threadgroup]],                 \
    uint  sgitg [[simdgroup_index_in_threadgroup]],          \
    uint  tiisg [[thread_index_in_simdgroup]]

// q1_scale decodes the two little-endian scale bytes at p into d (runtime/q1.Matrix.Scale).
static inline float q1_scale(device const uchar * p, uint kind) {
    const ushort h = ushort(p[0]) | ushort(ushort(p[1]) << 8);
    if (kind == SCALE_NEG_BF16) {
        return -as_type<float>(uint(h) << 16);
    }
    const float d = float(as_type<half>(h));
    return kind == SCALE_NEG_F16 ? -d : d;
}

// q1_block returns the byte offset of group (r, g) in a strided view.
static inline ulong q1_block(uint r, uint g, uint groups, uint stride) {
    return (ulong(r) * groups + g) * stride;
}
