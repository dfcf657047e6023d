// Package bfs scores sign-bit flips of a 1-bit model on probe sets: probes and metrics, a batched
// flip evaluator, an exact brute-force sensitivity scan, greedy flip search and a patch evaluator.
//
// # Probes
//
// A probe is a prompt with a correct answer and a distractor (Probe). Probe files use upstream's
// JSON schema (an array of {"prompt", "correct", "wrong", "name", "category"}) plus an optional
// "alternates" list; LoadProbes reads a file or one of the built-in sets (BuiltinSets). Answers
// are raw completions: no chat template, all whitespace significant.
//
// # Tokenisation in context
//
// Let P = encode(prompt). The continuation of answer a is
//
//	cont(a) = encode(prompt + a)[len(P):]   if encode(prompt + a) starts with P
//	cont(a) = encode(a)                     otherwise (the tokenizer merged across the boundary)
//
// (docs/UPSTREAM.md §5.2, trap T5). encode is the model's tokenizer with special tokens parsed, as
// Hugging Face's default encode does; no BOS is added.
//
// # Metrics
//
// Every metric gives one float64 "gap" per probe; positive means the model prefers the correct
// answer. With logits l(s, t) of the model after reading token sequence s, at its last position,
// and log p(t | s) = l(s, t) − log Σ_v exp l(s, v):
//
// seq_logprob (MetricSeqLogprob, the default): the difference of summed teacher-forced
// log-probabilities of the two whole answers,
//
//	gap = Σ_{j<|C|} log p(C_j | P·C_{<j})  −  Σ_{j<|W|} log p(W_j | P·W_{<j}),   C = cont(correct), W = cont(wrong)
//
// The terms j < k, where k is the length of the answers' common token prefix, are the same
// numbers in both sums and cancel exactly, so they are not computed; the two terms j = k share the
// row P·C_{<k}. The log-softmax is needed only at the remaining answer positions (a full LM-head
// row each); the sums are taken in float64 with the log-sum-exp shifted by the row maximum.
//
// token_gap (MetricTokenGap): the logit difference at the first token where the two
// continuations differ. With k the first index such that C_k ≠ W_k,
//
//	gap = l(P·C_{<k}, C_k) − l(P·C_{<k}, W_k)
//
// This fixes upstream's token_gap, which compares the last sub-token of each answer after the
// prompt only (docs/UPSTREAM.md trap T4: " 20" and " 0" both end in "0", so the gap is identically zero). A probe
// whose continuations never differ in a token (one is a prefix of the other) cannot be scored with
// token_gap; preparing it is an error. It needs only the two LM-head rows C_k and W_k at one
// position.
//
// Greedy check (GreedyAnswer, AnswerMatches; docs/UPSTREAM.md §5.3): decode greedily for up to 14
// tokens, stopping after the first token whose text contains a newline (or at an end-of-generation
// token, which is not included). Normalise by removing all whitespace, lower-casing, deleting
// ( ) { } [ ] * and replacing √ by "sqrt". A generation g matches an expected answer e when
// norm(e) ≠ "" and norm(g) = norm(e) + rest with rest empty, or rest starting with "+c" (a
// constant of integration), or rest[0] not one of 0-9 a-z ^ / * + - (. A probe is answered
// correctly when the generation matches the correct answer or one of its alternates.
//
// Scores do not depend on how probes and candidates are batched or on the thread count (Model.Threads): every
// sequence is computed by kernels whose per-row arithmetic is fixed, and the per-probe reductions
// run in a fixed order.
//
// # Fitness
//
// With current gaps g, gaps g0 of the unmodified model, targets T, controls C and penalty λ
// (docs/UPSTREAM.md §6.2, default λ = 2):
//
//	mean: F = mean_{t∈T} (g_t − g0_t) − λ · mean_{c∈C} max(0, g0_c − g_c)
//	min:  F = min_{t∈T}  (g_t − g0_t) − λ · mean_{c∈C} max(0, g0_c − g_c)
//
// The unmodified model has F = 0; control improvements earn nothing; an empty control set
// contributes 0.
//
// # Evaluating a flip
//
// The Evaluator runs every probe once and keeps the residual stream entering each layer that can
// hold a candidate. A probe is run as its shared prefix (prompt plus the answers' common tokens)
// and, for seq_logprob, the two answers' remaining tokens continuing it through a KV cache, so
// the prompt is computed once. A candidate in layer L is scored by copying the cached inputs of
// layer L and recomputing layers L..N-1 only; many (candidate, sequence) pairs go through one
// batch, each pair its own sequence, and the LM head is applied only to the rows the metric
// reads (for token_gap, only its two vocabulary rows).
//
// A flip is never written to the weights while it is being scored: the output of its projection
// is corrected for that candidate's rows only. By default the CPU path recomputes that one output
// from a flipped copy of the row with the same kernel, which makes a candidate's scores
// bit-identical to applying the flip and running the model (the naive path). With
// EvaluatorConfig.Delta it uses cpu.FlipDelta instead (a row flip negates one output; a group or
// bit flip subtracts twice the flipped weights' contribution), which is cheaper but differs from
// the naive path by float32 rounding amplified by the later layers (about 1e-5 on the gaps of
// the test models). Accepted flips are XORed into the weights and the caches refreshed from the
// lowest layer they touch; fitness after an acceptance is recomputed from the refreshed state.
// A backend may provide the batched layer run itself (BatchEvaluator); the CPU path is the
// fallback.
//
// # Scan and search
//
// Scan measures the exact sensitivity S = L(W ⊕ m) − L(W) of every candidate flip m of a set of
// layers, projections and a granularity, with L = −F (so S < 0 helps). Search is a greedy hill
// climb: ModeGreedy is upstream's algorithm (scale-guided sampling, screening, strict
// acceptance; docs/UPSTREAM.md §6), ModeFast proposes candidates in the order of a scan. Both are deterministic
// for a seed, report every step, can be cancelled and resumed from a Checkpoint.
package bfs
