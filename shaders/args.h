// args.h: the argument structs of the kernels, bound with setBytes at buffer index 0.
// Every field is 4 bytes, so C and Go agree without padding; shaders/args.go holds the Go copies
// and TestArgsLayout checks both sides (the clang harness prints these sizes and offsets).
#pragma once

#include "common.h"

// Q1Layout describes a 1-bit matrix in its file layout (common.h). bit_off and scale_off are
// byte offsets into the bound buffers, so a weight can be bound at offset 0 of a buffer that
// wraps the page-aligned span of the file around it.
struct Q1Layout {
    uint rows;
    uint cols;
    uint groups;        // cols / 128
    uint bit_stride;    // bytes between consecutive groups' sign bytes (18 GGUF, 16 MLX)
    uint scale_stride;  // bytes between consecutive groups' scales (18 GGUF, 2 MLX)
    uint scale_kind;    // SCALE_*
    uint bit_off;
    uint scale_off;
};

// Q1Args: matvec_q1 and embed_q1 over n input vectors or tokens.
struct Q1Args {
    Q1Layout w;
    uint n;
};

// NormArgs: rms_norm over rows of width elements.
struct NormArgs {
    uint  rows;
    uint  width;
    float eps;
};

// RopeArgs: rope_neox over x (n, heads, dim) with tables (n, dim/2).
struct RopeArgs {
    uint n;
    uint heads;
    uint dim;
};

// AttnArgs: attention for n queries whose positions are ctx-n .. ctx-1.
struct AttnArgs {
    uint  n;
    uint  ctx;
    uint  heads;
    uint  kv_heads;
    uint  dim;
    float scale;  // 1/sqrt(dim), computed on the host
};

// EltArgs: element-wise kernels over count floats.
struct EltArgs {
    uint count;
};

// FlipArgs: flip_delta for n_flips candidate flips x n input vectors.
struct FlipArgs {
    Q1Layout w;
    uint n;
    uint n_flips;
};

// FlipDesc is one candidate flip: a whole row (group < 0, col < 0), a group (col < 0) or one
// weight (col >= 0), as runtime/cpu.FlipDelta.
struct FlipDesc {
    int row;
    int group;
    int col;
};
