#!/usr/bin/python3
"""Expected logits for tests/test_ffn_variants.c: llama-style models whose MLP
is a PEER layer or two KAN layers (arch/peer*.gguf, arch/kan.gguf, written by
`strix synth`; see tests/data/README.md), run by a direct numpy implementation
of the whole model written from the papers' formulas, in float64. It shares no
code with strix: the GGUF file is parsed here, and nothing of strix's kernels
is used.

For each NAME it feeds the 16 prompt ids of the architecture fixtures, then
appends 32 tokens chosen greedily (argmax of the last position's logits), and
writes
  arch/NAME.ids      the 48 ids fed, one per line
  arch/NAME.logits   the logits after each, little-endian float32, 48 x vocab
It also prints, per model, the smallest score gap at any top-k boundary of
the PEER retrieval (how far the selection is from a tie).

Run from the repository root: /usr/bin/python3 tests/data/gen_ffn_variants.py
(Debian python3-numpy).
"""
import os
import struct
import sys

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "arch")
PROMPT = [1, 403, 407, 261, 378, 129, 288, 282, 102, 261, 392, 306, 218, 427, 271, 335]
N_GEN = 32


# ---- GGUF (version 3, F32 tensors only) ----
def read_gguf(path):
    b = open(path, "rb").read()
    at = 0

    def take(fmt):
        nonlocal at
        v = struct.unpack_from("<" + fmt, b, at)
        at += struct.calcsize("<" + fmt)
        return v[0]

    def string():
        nonlocal at
        n = take("Q")
        s = b[at:at + n].decode("utf-8", "replace")
        at += n
        return s

    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q",
              12: "d"}

    def value(t):
        if t == 8:
            return string()
        if t == 9:
            et = take("I")
            n = take("Q")
            return [value(et) for _ in range(n)]
        return take(scalar[t])

    assert b[:4] == b"GGUF"
    at = 4
    version = take("I")
    assert version == 3, version
    n_tensors = take("Q")
    n_kv = take("Q")
    kv = {}
    for _ in range(n_kv):
        k = string()
        kv[k] = value(take("I"))
    infos = []
    for _ in range(n_tensors):
        name = string()
        nd = take("I")
        ne = [take("Q") for _ in range(nd)]
        typ = take("I")
        off = take("Q")
        infos.append((name, ne, typ, off))
    align = kv.get("general.alignment", 32)
    base = (at + align - 1) // align * align
    tensors = {}
    for name, ne, typ, off in infos:
        assert typ == 0, f"{name}: only F32 tensors are read here"
        count = int(np.prod(ne))
        a = np.frombuffer(b, dtype="<f4", count=count, offset=base + off)
        # ne[0] is the fastest-varying (row length): numpy shape is reversed
        tensors[name] = a.reshape(list(reversed(ne))).astype(np.float64)
    return kv, tensors


# ---- the model ----
def silu(x):
    return x / (1.0 + np.exp(-x))


def rmsnorm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def topk(scores, ids, k):
    """The k best (score descending, then id ascending), and the gap between
    the k-th and the next score (inf when nothing is left out)."""
    order = np.lexsort((ids, -scores))
    gap = scores[order[k - 1]] - scores[order[k]] if len(order) > k else np.inf
    return order[:k], gap


class Peer:
    gap = np.inf

    def __init__(self, kv, a):
        self.nk = kv[a + ".peer.sub_key_count"]
        self.nh = kv[a + ".peer.head_count"]
        self.k = kv[a + ".peer.top_k"]
        self.dk = kv[a + ".peer.key_length"]
        self.sigmoid = kv.get(a + ".peer.gating", "softmax") == "sigmoid"
        assert kv[a + ".peer.expert_count"] == self.nk ** 2

    def __call__(self, T, il, x):
        p = f"blk.{il}."
        Wq = T[p + "ffn_peer_query.weight"]        # (n_head d_key, n_embd)
        K = T[p + "ffn_peer_keys.weight"].reshape(self.nh, 2, self.nk, self.dk // 2)
        U = T[p + "ffn_peer_down.weight"]          # (N, n_embd)
        V = T[p + "ffn_peer_up.weight"]            # (N, n_embd)
        y = np.zeros_like(x)
        half = self.dk // 2
        ar = np.arange(self.nk)
        for t in range(x.shape[0]):
            q = (Wq @ x[t]).reshape(self.nh, self.dk)
            for h in range(self.nh):
                s1 = K[h, 0] @ q[h, :half]
                s2 = K[h, 1] @ q[h, half:]
                a, g1 = topk(s1, ar, self.k)
                b, g2 = topk(s2, ar, self.k)
                cand = (s1[a][:, None] + s2[b][None, :]).ravel()
                eid = (a[:, None] * self.nk + b[None, :]).ravel()
                j, g3 = topk(cand, eid, self.k)
                Peer.gap = min(Peer.gap, g1, g2, g3)
                sc, e = cand[j], eid[j]
                if self.sigmoid:
                    w = 1.0 / (1.0 + np.exp(-sc))
                else:
                    w = np.exp(sc - sc.max())
                    w /= w.sum()
                for wi, ei in zip(w, e):
                    y[t] += wi * silu(U[ei] @ x[t]) * V[ei]
        return y


def bspline_cox_de_boor(x, grid, order, rng):
    """The grid + order B-spline bases of each x (any shape) on the uniform
    knots -rng + (j - order) 2 rng / grid, j = 0 .. grid + 2 order."""
    h = 2.0 * rng / grid
    t = -rng + (np.arange(grid + 2 * order + 1) - order) * h
    x = x[..., None]
    B = ((x >= t[:-1]) & (x < t[1:])).astype(np.float64)
    for p in range(1, order + 1):
        B = (x - t[:-(p + 1)]) / (t[p:-1] - t[:-(p + 1)]) * B[..., :-1] + \
            (t[p + 1:] - x) / (t[p + 1:] - t[1:-p]) * B[..., 1:]
    return B  # (..., grid + order)


class Kan:
    def __init__(self, kv, a):
        self.G = kv[a + ".kan.grid_size"]
        self.k = kv[a + ".kan.spline_order"]
        self.R = kv[a + ".kan.grid_range"]

    def layer(self, base, spline, x):
        B = bspline_cox_de_boor(x, self.G, self.k, self.R).reshape(x.shape[0], -1)
        return silu(x) @ base.T + B @ spline.T

    def __call__(self, T, il, x):
        p = f"blk.{il}."
        h = self.layer(T[p + "ffn_kan_base1.weight"], T[p + "ffn_kan_spline1.weight"], x)
        return self.layer(T[p + "ffn_kan_base2.weight"], T[p + "ffn_kan_spline2.weight"], h)


def forward(kv, T, ffn, ids):
    a = kv["general.architecture"]
    assert a == "llama"
    L = kv[a + ".block_count"]
    nh = kv[a + ".attention.head_count"]
    nkv = kv[a + ".attention.head_count_kv"]
    eps = kv[a + ".attention.layer_norm_rms_epsilon"]
    base = kv.get(a + ".rope.freq_base", 10000.0)
    emb = T["token_embd.weight"]
    n, d = len(ids), emb.shape[1]
    hd = d // nh
    n_rot = kv.get(a + ".rope.dimension_count", hd)
    x = emb[ids].copy()
    mask = np.triu(np.full((n, n), -np.inf), 1)
    for il in range(L):
        p = f"blk.{il}."
        xn = rmsnorm(x, T[p + "attn_norm.weight"], eps)
        q = (xn @ T[p + "attn_q.weight"].T).reshape(n, nh, hd)
        k = (xn @ T[p + "attn_k.weight"].T).reshape(n, nkv, hd)
        v = (xn @ T[p + "attn_v.weight"].T).reshape(n, nkv, hd)
        q = np.stack([rope_rows(q[:, hh], n_rot, base) for hh in range(nh)], 1)
        k = np.stack([rope_rows(k[:, hh], n_rot, base) for hh in range(nkv)], 1)
        att = np.zeros((n, nh, hd))
        for hh in range(nh):
            kh = hh // (nh // nkv)
            s = q[:, hh] @ k[:, kh].T / np.sqrt(hd) + mask
            s = np.exp(s - s.max(axis=1, keepdims=True))
            s /= s.sum(axis=1, keepdims=True)
            att[:, hh] = s @ v[:, kh]
        x = x + att.reshape(n, d) @ T[p + "attn_output.weight"].T
        xn = rmsnorm(x, T[p + "ffn_norm.weight"], eps)
        x = x + ffn(T, il, xn)
    xn = rmsnorm(x, T["output_norm.weight"], eps)
    out = T.get("output.weight", emb)
    return xn @ out.T


def rope_rows(v, n_rot, base):
    """Rotary positions 0 .. n-1 on rows v (n, head_dim), interleaved pairs."""
    out = v.copy()
    pos = np.arange(v.shape[0])
    for i in range(n_rot // 2):
        th = pos * base ** (-2.0 * i / n_rot)
        c, s = np.cos(th), np.sin(th)
        a, b = v[:, 2 * i], v[:, 2 * i + 1]
        out[:, 2 * i] = a * c - b * s
        out[:, 2 * i + 1] = a * s + b * c
    return out


def run(name):
    kv, T = read_gguf(os.path.join(OUT, name + ".gguf"))
    a = kv["general.architecture"]
    kind = kv[a + ".ffn_kind"]
    ffn = Peer(kv, a) if kind == "peer" else Kan(kv, a)
    Peer.gap = np.inf
    ids = list(PROMPT)
    while True:
        logits = forward(kv, T, ffn, ids)
        if len(ids) == len(PROMPT) + N_GEN:
            break
        ids.append(int(np.argmax(logits[-1])))
    with open(os.path.join(OUT, name + ".ids"), "w") as f:
        f.write("".join(f"{i}\n" for i in ids))
    logits.astype("<f4").tofile(os.path.join(OUT, name + ".logits"))
    srt = np.sort(logits, axis=1)
    print(f"{name}: {kind}, {len(ids)} ids, logits |max| {np.abs(logits).max():.3f}, "
          f"smallest top-2 logit gap {np.min(srt[:, -1] - srt[:, -2]):.2e}"
          + (f", smallest PEER top-k score gap {Peer.gap:.2e}" if kind == "peer" else ""))


if __name__ == "__main__":
    for nm in sys.argv[1:] or ["peer", "peer-sigmoid", "kan"]:
        run(nm)
