/*
 * backward.h - forward and backward pass of one Llama block and of the
 * language-model head, in F32, over a window of T tokens with full causal
 * attention (no KV cache), for training with the base weights frozen: the
 * gradients computed are those with respect to the hidden states, never the
 * weights.
 *
 * A block maps its input x (T, n_embd) to x + D(x) with
 *     a = Wo attn(rope(Wq n1), rope(Wk n1), Wv n1),  n1 = rmsnorm(x) * g1
 *     h = x + a
 *     D = a + Wd (silu(Wg n2) * (Wu n2)),             n2 = rmsnorm(h) * g2
 * (grouped-query attention: n_head query heads share n_head_kv key/value
 * heads). bw_block_forward returns the delta D, so a caller can gate it:
 * dynamic depth writes y = x + g D. Attention visibility: token t sees token
 * s < t only if vis[s] (s ran the layer and stored its keys and values), and
 * always sees itself.
 *
 * Weights are row-major F32 (rows of `cols` floats, GGUF's layout): y = W x.
 *
 * Low-rank adapters (LoRA): with d->lora_rank = R > 0, a projection whose
 * block has lora_a[k] (R, cols) and lora_b[k] (rows, R) computes
 * y = W x + B (A x); the backward pass then also adds the gradients with
 * respect to A and B (W stays frozen).
 */
#ifndef STRIX_BACKWARD_H
#define STRIX_BACKWARD_H

#include <stdint.h>

struct bw_dims {
    int n_embd, n_head, n_head_kv, head_dim, n_ff;
    int n_rot;       /* rotary dimensions per head (<= head_dim, even) */
    int neox;        /* rotary pairs (i, i + n_rot/2) instead of (2i, 2i+1) */
    float eps;       /* RMSNorm epsilon */
    float rope_base; /* rotary frequency base */
    int lora_rank;   /* adapters' rank (0: none); at most BW_MAX_RANK */
};

/* The block's projections, in the order of the adapter arrays. */
enum { BW_Q, BW_K, BW_V, BW_O, BW_GATE, BW_UP, BW_DOWN, BW_NPROJ };
#define BW_MAX_RANK 64

/* One block's weights, borrowed. */
struct bw_block {
    const float *attn_norm; /* (n_embd) */
    const float *wq;        /* (n_head * head_dim, n_embd) */
    const float *wk;        /* (n_head_kv * head_dim, n_embd) */
    const float *wv;        /* (n_head_kv * head_dim, n_embd) */
    const float *wo;        /* (n_embd, n_head * head_dim) */
    const float *ffn_norm;  /* (n_embd) */
    const float *w_gate;    /* (n_ff, n_embd) */
    const float *w_up;      /* (n_ff, n_embd) */
    const float *w_down;    /* (n_embd, n_ff) */
    const float *lora_a[BW_NPROJ], *lora_b[BW_NPROJ]; /* adapters, or NULL */
};

/* Where bw_block_backward adds the adapters' gradients (shapes of lora_a,
 * lora_b); NULL entries are skipped. */
struct bw_lora_grad {
    float *a[BW_NPROJ], *b[BW_NPROJ];
};

/* What the forward pass keeps for the backward pass of T tokens. */
struct bw_tape {
    int cap; /* tokens the buffers hold */
    float *x;   /* (T, n_embd) block input */
    float *n1;  /* (T, n_embd) normed input */
    float *r1;  /* (T) 1 / rms of x */
    float *q;   /* (T, q_dim) rotated */
    float *k;   /* (T, kv_dim) rotated */
    float *v;   /* (T, kv_dim) */
    float *p;   /* (n_head, T, T) attention probabilities */
    float *o;   /* (T, q_dim) attention output */
    float *h;   /* (T, n_embd) x + a */
    float *n2;  /* (T, n_embd) */
    float *r2;  /* (T) */
    float *gt;  /* (T, n_ff) gate pre-activation */
    float *up;  /* (T, n_ff) */
    float *act; /* (T, n_ff) silu(gate) * up */
    float *cs;  /* (T, n_rot) rotary cos, sin per token */
    float *u[BW_NPROJ]; /* (T, lora_rank) A x of each adapter (lora_rank > 0) */
    /* backward scratch */
    float *d1;      /* (T, max(n_embd, q_dim, n_ff)) */
    float *d2;      /* (T, max(n_embd, q_dim, n_ff)) + 2 n_ff + n_embd */
    float *dq;      /* (T, q_dim) */
    float *dk, *dv; /* (T, kv_dim) */
};

/* Allocates a tape for up to cap tokens; 0 when out of memory (then
 * bw_tape_free is still safe). */
int bw_tape_init(struct bw_tape *tp, const struct bw_dims *d, int cap);
void bw_tape_free(struct bw_tape *tp);

/* delta (T, n_embd) = D(x) for tokens at positions pos[0..T) (rotary), with
 * the visibility vis (T) described above; fills the tape. */
void bw_block_forward(const struct bw_dims *d, const struct bw_block *w, struct bw_tape *tp,
                      int T, const int32_t *pos, const uint8_t *vis, const float *x,
                      float *delta);
/* dx (T, n_embd) += (dD/dx)^T ddelta: the gradient of sum(ddelta * D) with
 * respect to the block input, from the tape of the last forward; with
 * adapters and g not NULL, their gradients added into g. */
void bw_block_backward(const struct bw_dims *d, const struct bw_block *w, struct bw_tape *tp,
                       int T, const float *ddelta, float *dx, const struct bw_lora_grad *g);

/* The head: logits = W rmsnorm(x) * g, loss = mean over the T tokens with a
 * target (target[t] >= 0) of -log softmax(logits)[target]. Returns the loss
 * and, when dx is not NULL, writes dloss/dx (T, n_embd). logits: scratch of
 * n_vocab floats, xn of n_embd. Returns NAN if no token has a target. */
double bw_head_loss(const struct bw_dims *d, const float *norm, const float *w_out, int n_vocab,
                    int T, const float *x, const int32_t *target, float *dx, float *logits,
                    float *xn);

/* RMSNorm and its backward, exposed for the routers: y = x r g with
 * r = 1/sqrt(mean(x^2) + eps) (g NULL: 1); dx += d(sum dy*y)/dx. */
float bw_rmsnorm(float *y, const float *x, const float *g, int n, float eps);
void bw_rmsnorm_back(float *dx, const float *dy, const float *x, const float *g, float r, int n);

/* y (rows) = W x, W (rows, cols); y += when acc. */
void bw_matvec(float *y, const float *w, const float *x, int rows, int cols, int acc);
/* dx (cols) += W^T dy. */
void bw_matvec_t(float *dx, const float *w, const float *dy, int rows, int cols);

#endif
