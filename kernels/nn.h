/* nn — the neural-network layers of the dit engine, as whole-tensor ops.
 *
 * Every function works on a whole activation tensor (a row-major matrix of
 * `n` rows: tokens, and `d` columns: channels), never on one element, so
 * that a CUDA implementation can later sit behind this same contract with
 * one launch per call. This file is the C reference: matrix products go to
 * OpenBLAS (cblas_sgemm), the element-wise ops are plain loops.
 *
 * Where a matrix may be a column window of a wider buffer (q, k and v of a
 * fused projection share rows), the op takes a leading dimension (`ld*`:
 * floats from one row to the next). Nothing here allocates: scratch space
 * is the caller's, sized by the matching *_workspace function, so a model
 * can allocate its buffers once per shape.
 *
 * Numerics follow PyTorch's float32 definitions (biased variance in layer
 * norm, GELU with the tanh approximation, RMS norm as x / sqrt(mean(x^2) +
 * eps)); the norms' reductions accumulate in double, which only makes
 * them closer to the exact value. Exponentials (softmax, GELU, SiLU) use
 * nn.c's own vectorised exp, a few ulp from libm's.
 *
 * The element-wise ops run at the widest vector width the CPU has (x86-64:
 * 16 lanes with AVX-512, 8 with AVX2, else 4); the environment variable
 * RFARM_NN_LANES (4, 8 or 16) caps it. Results are the same at every width
 * except for the summation order of a softmax row.
 */
#ifndef NN_H
#define NN_H

#include <stddef.h>

/* Memory for count floats of large tensors (weights, activations), 64-byte
 * aligned, not zeroed; NULL when there is none. From 2 MiB on it is
 * 2 MiB-aligned and asked to be backed by huge pages (Linux transparent
 * huge pages in madvise mode; elsewhere, or where refused, ordinary
 * pages): sgemm packs its operands from memory a page-table walk away,
 * and huge pages made the weight packing, about a tenth of a forward,
 * measurably cheaper. Release with kn_tensor_free (NULL is fine). */
float *kn_tensor_alloc(size_t count);
void kn_tensor_free(float *p);

/* C[M,N] = alpha * op(A) op(B) + beta * C, row-major. op(A) is A[M,K]
 * (lda >= K) or, with trans_a, A^T for A stored [K,M] (lda >= M); the same
 * for B. Empty products (M, N or K zero) are handled: C = beta * C. */
void kn_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
              int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* y[n, out] = x[n, in] W^T + b, the layout of torch.nn.Linear: W is
 * [out, in] row-major. b may be NULL. */
void kn_linear(const float *x, int ldx, int n, int in, const float *W, const float *b, int out,
               float *y, int ldy);

/* y[i, :] += b for every row. */
void kn_add_bias(float *y, int ldy, int n, int d, const float *b);

/* Layer norm over the last dimension: y = (x - mean) / sqrt(var + eps),
 * then * w + b when w (and b) are given; w or b may be NULL. y may be x. */
void kn_layer_norm(const float *x, float *y, int n, int d, const float *w, const float *b,
                   float eps);

/* RMS norm in two halves, so that a row split over tensor-parallel ranks
 * can be normalised over its full width: each rank sums the squares of
 * its columns (kn_sumsq_rows), the sums are all-reduced, then each rank
 * scales its columns (kn_rms_scale). `dfull` is the width of the whole row
 * the mean runs over; w holds this part's d weights. */
void kn_sumsq_rows(const float *x, int ldx, int n, int d, float *sumsq);
void kn_rms_scale(float *x, int ldx, int n, int d, const float *sumsq, int dfull,
                  const float *w, float eps);
/* Both halves for an unsplit row (dfull = d). sumsq: n floats of scratch. */
void kn_rms_norm(float *x, int ldx, int n, int d, const float *w, float eps, float *sumsq);

/* In place, over count elements. */
void kn_gelu_tanh(float *x, size_t count);
void kn_silu(float *x, size_t count);

/* Adaptive-norm modulation, per row: x = x * (1 + scale) + shift, scale and
 * shift [d] shared by all rows. */
void kn_modulate(float *x, int n, int d, const float *scale, const float *shift);

/* Residual update, per row: x += (y + b) * gate. b and gate [d]; either may
 * be NULL (no bias, gate of one). y has leading dimension ldy. */
void kn_residual_add(float *x, int n, int d, const float *y, int ldy, const float *b,
                     const float *gate);

/* Rotary embedding on interleaved pairs: for each row i, head h and pair
 * j < hd/2, the pair (x[2j], x[2j+1]) of that head is rotated by the angle
 * whose cosine and sine are cos_t[i*hd/2 + j] and sin_t[i*hd/2 + j] (the
 * same for every head). x is [n, heads*hd] with leading dimension ldx. */
void kn_rope_apply(float *x, int ldx, int n, int heads, int hd, const float *cos_t,
                   const float *sin_t);

/* The cosine/sine tables of a 3D rotary embedding over a grid of F x H x W
 * tokens (row i = (f*H + h)*W + w): a head's hd channels are cut into a
 * time part of hd - 2*(2*(hd/6)) channels and height and width parts of
 * 2*(hd/6) channels each; pair j of a part of `dp` channels at position p
 * turns by p * theta^(-2j/dp). Angles are computed in double and rounded
 * to float, as the reference does. cos_t and sin_t hold F*H*W*hd/2 floats. */
void kn_rope3d_tables(int F, int H, int W, int hd, double theta, float *cos_t, float *sin_t);

/* Multi-head scaled dot-product attention, no mask:
 *   o_h = softmax(q_h k_h^T / sqrt(hd)) v_h   for every head h,
 * q [nq, heads*hd] (ldq), k and v [nk, heads*hd] (ldk, ldv), o [nq, heads*hd]
 * (ldo). One head and a block of query rows at a time, with sgemm, so the
 * score matrix never needs more than kn_attention_workspace() floats
 * however long the sequences are. */
size_t kn_attention_workspace(int nq, int nk);
void kn_attention(const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                  float *o, int ldo, int nq, int nk, int heads, int hd, float *work);

#endif
