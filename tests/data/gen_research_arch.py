#!/usr/bin/python3
"""Reference logits for strix's own research architectures (tests/test_retnet.c
and the architecture tests), computed directly with numpy (Debian
python3-numpy) from the weights in the synthesized GGUF files, without strix:

  arch/retnet.gguf  (input: `strix synth --arch retnet`, see tests/data/README.md)
  arch/retnet.ids   48 token ids: a 16-token prompt (BOS, then 15 seeded random
                    ids), then 32 greedy continuations
  arch/retnet.logits float32 (48, n_vocab): the logits at every position

RetNet is computed in its parallel form over the whole sequence at once, in
float64: R = (Q K^T / sqrt(d_k)) * D with D[n, m] = gamma^(n - m) for m <= n,
O = R V, per head; then a group norm per head, the swish gate and W_O.

Run from the repository root: /usr/bin/python3 tests/data/gen_research_arch.py
"""
import os
import struct
import sys

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "arch")


def read_gguf(path):
    """Keys and F32 tensors of a GGUF file (version 3), as numpy arrays
    shaped (ne[n-1], ..., ne[0])."""
    data = open(path, "rb").read()
    at = 0

    def take(fmt):
        nonlocal at
        v = struct.unpack_from("<" + fmt, data, at)
        at += struct.calcsize("<" + fmt)
        return v[0]

    def string():
        nonlocal at
        n = take("Q")
        s = data[at:at + n].decode()
        at += n
        return s

    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?",
              10: "Q", 11: "q", 12: "d"}

    def value(t):
        if t in scalar:
            return take(scalar[t])
        if t == 8:
            return string()
        if t == 9:
            et, n = take("I"), take("Q")
            return [value(et) for _ in range(n)]
        raise ValueError("GGUF value type %d" % t)

    assert data[:4] == b"GGUF" and struct.unpack_from("<I", data, 4)[0] == 3
    at = 8
    n_tensors, n_kv = take("Q"), take("Q")
    keys = {}
    for _ in range(n_kv):
        k = string()
        keys[k] = value(take("I"))
    infos = []
    for _ in range(n_tensors):
        name = string()
        nd = take("I")
        ne = [take("Q") for _ in range(nd)]
        typ, off = take("I"), take("Q")
        infos.append((name, ne, typ, off))
    align = keys.get("general.alignment", 32)
    base = (at + align - 1) // align * align
    tensors = {}
    for name, ne, typ, off in infos:
        assert typ == 0, "%s is not F32" % name
        n = int(np.prod(ne))
        a = np.frombuffer(data, dtype="<f4", count=n, offset=base + off)
        tensors[name] = a.reshape(list(reversed(ne))).astype(np.float64)
    return keys, tensors


def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope_neox(x, pos, n_rot, base):
    """Rotates the first n_rot values of each row of x (T, d) by position:
    pairs (i, i + n_rot / 2) by angle pos * base^(-2 i / n_rot)."""
    half = n_rot // 2
    theta = pos[:, None] * base ** (-2.0 * np.arange(half) / n_rot)[None, :]
    c, s = np.cos(theta), np.sin(theta)
    y = x.copy()
    x0, x1 = x[:, :half], x[:, half:n_rot]
    y[:, :half] = x0 * c - x1 * s
    y[:, half:n_rot] = x0 * s + x1 * c
    return y


def silu(x):
    return x / (1.0 + np.exp(-x))


def retnet_logits(keys, W, ids):
    a = "retnet"
    H = keys[a + ".attention.head_count"]
    n_layer = keys[a + ".block_count"]
    dk = keys[a + ".attention.key_length"]
    dv = keys[a + ".attention.value_length"]
    eps = keys[a + ".attention.layer_norm_rms_epsilon"]
    n_rot = keys.get(a + ".rope.dimension_count", dk)
    base = keys.get(a + ".rope.freq_base", 10000.0)
    first = keys.get(a + ".retention.decay_first", 5.0)
    step = keys.get(a + ".retention.decay_step", 1.0)
    gamma = 1.0 - 2.0 ** -(first + step * np.arange(H))
    T = len(ids)
    pos = np.arange(T, dtype=np.float64)
    x = W["token_embd.weight"][ids]
    diff = pos[:, None] - pos[None, :]
    for l in range(n_layer):
        p = "blk.%d." % l
        h = rms_norm(x, W[p + "attn_norm.weight"], eps)
        q = h @ W[p + "attn_q.weight"].T
        k = h @ W[p + "attn_k.weight"].T
        v = h @ W[p + "attn_v.weight"].T
        g = h @ W[p + "ret_gate.weight"].T
        o = np.zeros((T, H * dv))
        for hh in range(H):
            qh = rope_neox(q[:, hh * dk:(hh + 1) * dk], pos, n_rot, base) / np.sqrt(dk)
            kh = rope_neox(k[:, hh * dk:(hh + 1) * dk], pos, n_rot, base)
            D = np.where(diff >= 0, gamma[hh] ** np.maximum(diff, 0), 0.0)
            oh = ((qh @ kh.T) * D) @ v[:, hh * dv:(hh + 1) * dv]
            mu = oh.mean(axis=1, keepdims=True)
            var = ((oh - mu) ** 2).mean(axis=1, keepdims=True)
            o[:, hh * dv:(hh + 1) * dv] = (oh - mu) / np.sqrt(var + eps)
        o = o * W[p + "ret_norm.weight"] * silu(g)
        x = x + o @ W[p + "attn_output.weight"].T
        h = rms_norm(x, W[p + "ffn_norm.weight"], eps)
        f = silu(h @ W[p + "ffn_gate.weight"].T) * (h @ W[p + "ffn_up.weight"].T)
        x = x + f @ W[p + "ffn_down.weight"].T
    x = rms_norm(x, W["output_norm.weight"], eps)
    out = W.get("output.weight", W["token_embd.weight"])
    return x @ out.T


def ffn(x, W, p, eps):
    h = rms_norm(x, W[p + "ffn_norm.weight"], eps)
    f = silu(h @ W[p + "ffn_gate.weight"].T) * (h @ W[p + "ffn_up.weight"].T)
    return x + f @ W[p + "ffn_down.weight"].T


def yoco_logits(keys, W, ids):
    """YOCO: gated retention self-decoder (parallel form with D[n, m] the
    product of the per-token decays over (m, n]), then one shared K, V from
    its output, then cross-attention blocks (causal softmax, GQA)."""
    a = "yoco"
    H = keys[a + ".attention.head_count"]
    Hkv = keys[a + ".attention.head_count_kv"]
    n_layer = keys[a + ".block_count"]
    n_self = keys[a + ".self_block_count"]
    tau = keys[a + ".retention.gate_temperature"]
    eps = keys[a + ".attention.layer_norm_rms_epsilon"]
    d = keys.get(a + ".attention.key_length", keys[a + ".embedding_length"] // H)
    n_rot = keys.get(a + ".rope.dimension_count", d)
    base = keys.get(a + ".rope.freq_base", 10000.0)
    T = len(ids)
    pos = np.arange(T, dtype=np.float64)
    causal = pos[:, None] >= pos[None, :]
    x = W["token_embd.weight"][ids]
    for l in range(n_self):
        p = "blk.%d." % l
        h = rms_norm(x, W[p + "attn_norm.weight"], eps)
        q, k, v = (h @ W[p + n + ".weight"].T for n in ("attn_q", "attn_k", "attn_v"))
        g = h @ W[p + "ret_gate.weight"].T
        logdecay = -np.logaddexp(0.0, -(h @ W[p + "ret_decay.weight"].T)) / tau  # (T, H)
        o = np.zeros((T, H * d))
        for hh in range(H):
            c = np.cumsum(logdecay[:, hh])
            D = np.where(causal, np.exp(np.minimum(c[:, None] - c[None, :], 0.0)), 0.0)
            qh = rope_neox(q[:, hh * d:(hh + 1) * d], pos, n_rot, base) / np.sqrt(d)
            kh = rope_neox(k[:, hh * d:(hh + 1) * d], pos, n_rot, base)
            oh = ((qh @ kh.T) * D) @ v[:, hh * d:(hh + 1) * d]
            mu = oh.mean(axis=1, keepdims=True)
            var = ((oh - mu) ** 2).mean(axis=1, keepdims=True)
            o[:, hh * d:(hh + 1) * d] = (oh - mu) / np.sqrt(var + eps)
        o = o * W[p + "ret_norm.weight"] * silu(g)
        x = ffn(x + o @ W[p + "attn_output.weight"].T, W, p, eps)
    p = "blk.%d." % n_self
    h = rms_norm(x, W[p + "cross_kv_norm.weight"], eps)
    K, V = h @ W[p + "cross_k.weight"].T, h @ W[p + "cross_v.weight"].T
    K = np.concatenate([rope_neox(K[:, j * d:(j + 1) * d], pos, n_rot, base)
                        for j in range(Hkv)], axis=1)
    for l in range(n_self, n_layer):
        p = "blk.%d." % l
        h = rms_norm(x, W[p + "attn_norm.weight"], eps)
        q = h @ W[p + "attn_q.weight"].T
        o = np.zeros((T, H * d))
        for hh in range(H):
            j = hh // (H // Hkv)
            qh = rope_neox(q[:, hh * d:(hh + 1) * d], pos, n_rot, base)
            s = qh @ K[:, j * d:(j + 1) * d].T / np.sqrt(d)
            s = np.where(causal, s, -np.inf)
            s = np.exp(s - s.max(axis=1, keepdims=True))
            o[:, hh * d:(hh + 1) * d] = (s / s.sum(axis=1, keepdims=True)) @ V[:, j * d:(j + 1) * d]
        x = ffn(x + o @ W[p + "attn_output.weight"].T, W, p, eps)
    x = rms_norm(x, W["output_norm.weight"], eps)
    out = W.get("output.weight", W["token_embd.weight"])
    return x @ out.T


def make(name, logits_fn, seed):
    keys, W = read_gguf(os.path.join(OUT, name + ".gguf"))
    n_vocab = W["token_embd.weight"].shape[0]
    rng = np.random.default_rng(seed)
    ids = [1] + [int(i) for i in rng.integers(3, n_vocab, 15)]
    while len(ids) < 48:
        ids.append(int(np.argmax(logits_fn(keys, W, ids)[-1])))
    logits = logits_fn(keys, W, ids)
    with open(os.path.join(OUT, name + ".ids"), "w") as f:
        f.write("".join("%d\n" % i for i in ids))
    logits.astype("<f4").tofile(os.path.join(OUT, name + ".logits"))
    print("%s: %d positions, logits in [%.3f, %.3f]" % (name, len(ids), logits.min(),
                                                         logits.max()))


if __name__ == "__main__":
    which = sys.argv[1:] or ["retnet", "yoco"]
    if "retnet" in which:
        make("retnet", retnet_logits, 16)
    if "yoco" in which:
        make("yoco", yoco_logits, 17)
