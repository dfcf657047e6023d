// Package patch reads, writes and applies XOR patches: lists of sign-bit flips in 1-bit models.
//
// # Flip semantics
//
//  1. A model weight is one sign bit with a scale per 128 weights (q1.Matrix). A flip XORs sign
//     bits; scales (and MLX biases) are never touched by any patch.
//  2. A row flip XORs every sign bit of output row Row of projection Proj in layer Layer:
//     W[r,:] becomes -W[r,:]. It flips Cols bits: 4096 for q/k/v/o/gate/up in Bonsai-8B, 12288 for
//     down_proj (upstream's "4096 bits per flip" is wrong for down_proj).
//  3. A group flip XORs the 128 sign bits of group Group of the row: W[r, 128g:128g+128] is negated.
//     Groups per row = Cols/128 (32, or 96 for down_proj); upstream hard-codes 32.
//  4. A bit flip (ours, v2 only) XORs the one sign bit (Row, Col).
//  5. XOR is its own inverse and commutes: applying a patch twice restores the model, patches can
//     be applied and reverted in any order, and the flips of one patch may be applied in any
//     order. Flips of one patch may overlap (a row flip and a bit flip of the same row): they
//     compose by XOR, so that bit ends up unflipped. This is what upstream's apply loop does and
//     how Stack writes "this row except these bits". A flip listed twice in one patch is rejected
//     (it would cancel itself); Stack is the tool that cancels flips on purpose.
//  6. On GGUF Q1_0 a flip negates weights exactly (w = bit ? +d : -d). On MLX affine 1-bit weights
//     it maps w to scale + 2*bias - w, a reflection about the group's midpoint, which is -w only
//     when bias = -scale/2 (true for Bonsai's own files). A patch found on one encoding need not
//     transfer to the other.
//  7. Projections are named with Hugging Face names: q_proj k_proj v_proj o_proj gate_proj up_proj
//     down_proj. The GGUF names attn_q attn_k attn_v attn_output ffn_gate ffn_up ffn_down are
//     accepted on input and written back as Hugging Face names.
//
// # Upstream canonical format (bankai_row_xor_v1)
//
// A JSON object written by Python's json.dumps(indent=2): two-space indentation, keys in this
// order, ASCII only (other characters as \uXXXX), no trailing newline.
//
//  1. "version": 1.
//  2. "format": "bankai_row_xor_v1", even when flips carry a group.
//  3. "name": string. When absent the loader uses the file name without its extension.
//  4. "description": string, default "".
//  5. "base_model": string, free text, never validated; default "unknown".
//  6. "flips": array, in acceptance order. A row flip is {"layer": int, "proj": string,
//     "row": int}; a group flip adds "group": int (a missing or null "group" means a row flip).
//     Upstream's loader passes each flip's keys as keyword arguments, so any other key inside a
//     flip breaks it: Parse rejects unknown keys and Marshal never writes one.
//  7. "stats": {"n_flips": n, "bits_flipped": 4096*n, "size_bytes": 12*n}: nominal figures
//     (see NominalStats), ignored when loading.
//  8. "metadata": free-form object, may be {} (search settings: search_algorithm, metric,
//     backend, search_layers, search_projs, max_iters, control_penalty, final_fitness,
//     search_time_seconds, screened_out).
//  9. "bankai_metal" (ours, optional, last): {"fingerprint": string, "bits_flipped": int}, the
//     fingerprint of the model the patch was made for and the exact number of bits it flips.
//     Written only when known. Upstream's loader reads only the keys 3-6 and 8, so it ignores this.
//
// Parse followed by Marshal reproduces each committed upstream canonical file byte for byte
// (metadata keeps its top-level key order and number spelling; nested objects come out sorted).
//
// # Upstream legacy format (experiment 3, patch_math_v1.json)
//
//  1. "version": 1 and "type": "row_flip"; no "format" and no "name".
//  2. "description", "base_model" and "flips" as in the canonical format.
//  3. "n_flips", "bits_flipped", "patch_size_bytes" at top level (nominal, ignored).
//
// # Upstream runner format (Modal experiments 9-11)
//
//  1. Only "name", "description", "base_model", "flips" and "metadata", as in the canonical
//     format; no version, format or stats.
//
// Marshal writes legacy and runner patches in the canonical shape.
//
// # Our format (bankai_xor_v2)
//
// Written by Marshal when a patch has at least one bit flip (a v1 file cannot hold one), in the
// same JSON style:
//
//  1. "version": 2.
//  2. "format": "bankai_xor_v2".
//  3. "name", "description", "base_model": as in v1.
//  4. "fingerprint": string, the Target.Fingerprint of the model the patch was made for, or "".
//  5. "flips": array of {"layer","proj","row"} (row), {"layer","proj","row","group"} (group) or
//     {"layer","proj","row","col"} (bit). A flip never has both "group" and "col".
//  6. "stats": exact counts {"n_flips", "n_rows", "n_groups", "n_bits"} and, when known,
//     "bits_flipped" (the exact Hamming distance the patch makes).
//  7. "metadata": as in v1.
//
// # Reading
//
// Parse and Load decode the file as a stream (the flips one at a time, never a tree of the
// whole file), so memory stays proportional to the number of flips. They accept all four
// shapes and reject a file over MaxFileSize, more than MaxFlips flips, an
// unknown "format" or "type", a version that does not match the format, a flip that is not an
// object, an unknown or repeated key inside a flip, a value of the wrong JSON type, a
// non-integer, negative or over-large index, an unknown projection, a flip with both "group" and
// "col", "col" outside v2, a repeated top-level key, data after the object, and a flip listed twice
// (naming both indices). Errors name the flip index and field, in words rather than Go types.
// Other top-level keys are ignored, as upstream does.
//
// # Identity and provenance
//
// A patch's identity is its content: ID hashes the canonical (normalised, sorted) flip set, so
// it ignores the name, the order of the flips and the format. A patched copy of a model
// carries a Note: the base model's fingerprint and, for each patch in it, name, ID,
// fingerprint and flip count.
//
// # Algebra
//
//   - Applied tracks what is applied to one model: Apply checks every flip before touching a bit,
//     refuses a patch whose content (ID) is already applied, whatever its name, and a
//     fingerprint mismatch unless forced, and warns on a missing fingerprint and on overlap with
//     applied patches. Two patches with one name both apply (the second is listed as NAME@ID).
//     Inherit reads a patched copy's Note: its patches count as applied (forcing one reverts
//     it) and patches for its base are accepted. Revert and RevertPatch work in any order, and
//     Note gives the provenance record to save with the copy.
//   - Stack XORs patches without the model. Each row is kept as "row flips, group flips, bit
//     flips" with counts, so any mix combines exactly, and it reports the flips that cancelled.
//     Output is canonical (sorted; within a group, bits or group-plus-exceptions, whichever is
//     shorter) and independent of argument order. Without the row length it cannot merge group
//     flips into a row flip.
//   - Diff compares two models with equal shapes and scales and writes the shortest form per
//     row (row flip, group flips, bit flips, or a row flip plus exceptions); Stack leaves its
//     output unchanged.
//   - Verify compares a model with its unpatched base: sign bits do not record what was flipped,
//     so no check is possible without the base.
//
// # Statistics
//
// Stats measures a patch on a model: BitsFlipped is exact (a row flip counts its projection's
// Cols, overlapping flips are XORed first) and equals the Hamming distance between the patched
// and unpatched sign bits. StatsNominal returns upstream's figures, 4096 bits and 12 bytes per
// flip whatever the projection or granularity, kept only for comparison with upstream numbers.
package patch
