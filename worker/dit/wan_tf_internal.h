/* wan_tf_internal — the layout of a wan_tf shard, shared by wan_tf_load.c
 * (which fills it) and wan_tf.c (which runs it). Not for other modules.
 *
 * Weights of one projection that read the same input are stored fused, so
 * one sgemm computes them: self-attention's q, k and v rows of this rank
 * as one [3*dl, dim] matrix, cross-attention's k and v as [2*dl, dim],
 * where dl = local heads * head_dim.
 */
#ifndef WAN_TF_INTERNAL_H
#define WAN_TF_INTERNAL_H

#include "wan_tf.h"

typedef struct {
    float *sst;            /* [6, dim] scale_shift_table */
    float *qkv_w, *qkv_b;  /* self-attention: [3*dl, dim], [3*dl] */
    float *nq1, *nk1;      /* self-attention q/k RMS weights, this rank's [dl] */
    float *o1_w, *o1_b;    /* [dim, dl] input columns of to_out, [dim] */
    float *n2_w, *n2_b;    /* [dim] each; NULL without cross_attn_norm */
    float *q2_w, *q2_b;    /* cross-attention q: [dl, dim], [dl] */
    float *kv2_w, *kv2_b;  /* cross-attention k, v: [2*dl, dim], [2*dl] */
    float *nq2, *nk2;      /* [dl] */
    float *o2_w, *o2_b;    /* [dim, dl], [dim] */
    float *ff1_w, *ff1_b;  /* [fl, dim], [fl] */
    float *ff2_w, *ff2_b;  /* [dim, fl] input columns, [dim] */
} wan_tf_block;

/* One prompt's text side, kept between forwards: what a forward computes
 * from the text embedding alone, so that later forwards with the same text
 * (every sampling step after the first) skip it. Valid once a forward that
 * filled it has finished. */
typedef struct {
    int valid;
    int L;
    float *key;        /* [L, text_dim]: the text embedding it was made from */
    float *kv;         /* [num_layers, L, 2*dl]: each block's cross-attention k
                        * (RMS-normed) and v for this rank's heads */
    size_t key_cap, kv_cap; /* floats allocated */
    uint64_t used;     /* forward count at the last use: least recent goes first */
} wan_tf_text;

/* The conditional and the unconditional prompt of classifier-free guidance. */
#define WAN_TF_TEXT_SLOTS 2

/* Activations, sized for n_cap tokens and l_cap text tokens. */
typedef struct {
    int n_cap, l_cap;
    float *x;      /* [N, dim] residual stream */
    float *h;      /* [N, dim] normalised input of a sub-layer */
    float *y;      /* [N, dim] projection output (partial before all-reduce) */
    float *qkv;    /* [N, 3*dl] */
    float *att;    /* [N, dl] attention output */
    float *q2;     /* [N, dl] */
    float *ff;     /* [N, fl] */
    float *patch;  /* [N, max(C_in, C_out) * pt*ph*pw] */
    float *ctx1;   /* [L, tl] text MLP hidden, this rank's units */
    float *ctx;    /* [L, dim] projected text */
    float *kv2;    /* [L, 2*dl] cross-attention k, v when not cached */
    float *sums;   /* [2 * max(N, L)] sums of squares for q/k norms */
    float *work;   /* attention scratch */
    size_t work_cap;
    float *rope_cos, *rope_sin; /* [N, hd/2] */
    int rope_f, rope_h, rope_w; /* grid the tables hold, 0 when none */
} wan_tf_acts;

struct wan_tf {
    wan_tf_config cfg;
    coll *c; /* NULL: one rank */
    int rank, nranks;
    int dim, dl, fl; /* model width; this rank's attention and ffn widths */
    int h0;          /* first head of this rank */
    int f0;          /* first ffn unit of this rank */
    int t0, tl;      /* this rank's hidden units of the text MLP */
    uint64_t bytes;  /* float32 weight bytes held */

    float *arena;                     /* every weight below lies in it (kn_tensor_alloc) */
    float *patch_w, *patch_b;         /* [dim, C_in*pt*ph*pw], [dim] */
    float *te1_w, *te1_b;             /* time_embedder.linear_1 [dim, freq_dim] */
    float *te2_w, *te2_b;             /* time_embedder.linear_2 [dim, dim] */
    float *tp_w, *tp_b;               /* time_proj [6*dim, dim] */
    float *tx1_w, *tx1_b;             /* text_embedder.linear_1 rows: [tl, text_dim], [tl] */
    float *tx2_w, *tx2_b;             /* text_embedder.linear_2 input columns [dim, tl], [dim] */
    float *out_w, *out_b;             /* proj_out [C_out*pt*ph*pw, dim] */
    float *out_sst;                   /* [2, dim] */
    wan_tf_block *blocks;

    /* per-forward vectors */
    float *tfreq;   /* [freq_dim] */
    float *temb;    /* [dim] */
    float *tmp;     /* [dim] */
    float *tproj;   /* [6*dim] */
    float *mod;     /* [6*dim] block modulation */
    float *scale1;  /* [dim] 1 + a modulation scale: the affine weight of a norm */
    wan_tf_acts a;

    int text_cache_on;
    uint64_t forwards, text_hits;
    wan_tf_text text[WAN_TF_TEXT_SLOTS];
};

/* Frees the activation buffers (wan_tf.c) and zeroes *a. */
void wan_tf_acts_free(wan_tf_acts *a);

/* Frees the text cache's buffers (wan_tf.c) and empties it. */
void wan_tf_text_free(wan_tf *m);

/* Split [0, total) into nranks near-equal parts; part r is [*start, *start+*len). */
void wan_tf_share(int total, int rank, int nranks, int *start, int *len);

#endif
