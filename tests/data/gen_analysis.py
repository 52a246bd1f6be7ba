#!/usr/bin/python3
"""Reference values for tests/test_analysis.c and tests/test_prune.c, computed
directly with numpy (Debian python3-numpy; no strix code involved):

  analysis_states.bin   int32 n, int32 d, then X and Y, float32 (n, d) row-major:
                        a fixed set of "hidden states" (anisotropic, low-rank plus
                        noise, two duplicated rows) and a nonlinear map of them
  analysis_ref.txt      "key value" lines: the statistics of X -> Y (linearity with
                        and without the residual, cosine, covariance spectrum, mean
                        pair cosine, TwoNN), of the token embeddings of
                        stories260K-ref.gguf, and Wanda / magnitude masks of a small
                        layer (W 8 x 32, calibration inputs 40 x 32)

Run from the repository root: /usr/bin/python3 tests/data/gen_analysis.py
GGUF reading uses llama.cpp's gguf-py (set GGUF_PY to its folder).
"""
import os
import sys

import numpy as np

OUT = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(20261130)

# ---- hidden states ----
n, d, r = 300, 16, 6
Z = rng.standard_normal((n, r))
M = rng.standard_normal((r, d)) * np.linspace(3.0, 0.3, d)
X = Z @ M + 0.05 * rng.standard_normal((n, d)) + np.linspace(-1, 1, d)
X[:, 0] *= 4.0  # a dominant direction (anisotropy)
X[17] = X[5]    # duplicates: TwoNN leaves out points at distance 0
X[230] = X[5]
B = rng.standard_normal((d, d)) / np.sqrt(d)
Y = X + 0.6 * np.tanh(X @ B) + 0.01 * rng.standard_normal((n, d))
X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
with open(os.path.join(OUT, "analysis_states.bin"), "wb") as f:
    f.write(np.array([n, d], dtype="<i4").tobytes())
    f.write(X32.astype("<f4").tobytes())
    f.write(Y32.astype("<f4").tobytes())


def linearity(x, y):
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    x /= np.linalg.norm(x)
    y /= np.linalg.norm(y)
    a = np.linalg.lstsq(x, y, rcond=None)[0]
    return 1.0 - np.linalg.norm(x @ a - y) ** 2


def cosines(x, y):
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    c = (x * y).sum(1) / np.sqrt((x * x).sum(1) * (y * y).sum(1))
    return c.mean(), c.std()


def spectrum(x):
    x = x.astype(np.float64)
    x = x - x.mean(axis=0)
    w = np.linalg.eigvalsh(x.T @ x / (len(x) - 1))[::-1]
    w = np.maximum(w, 0)
    share = np.cumsum(w) / w.sum()
    return w[0] / w.sum(), int(np.argmax(share >= 0.9) + 1)


def pair_cosine(x):
    x = x.astype(np.float64)
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    g = u @ u.T
    k = len(x)
    return (g.sum() - np.trace(g)) / (k * (k - 1))


def twonn(x):
    x = x.astype(np.float64)
    dist = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(dist, np.inf)
    s = np.sort(dist, axis=1)
    r1, r2 = s[:, 0], s[:, 1]
    ok = r1 > 0
    return ok.sum() / np.log(r2[ok] / r1[ok]).sum()


lines = []
lines.append("linearity %.12g" % linearity(X32, Y32))
lines.append("linearity_no_residual %.12g" % linearity(X32, Y32 - X32))
cm, cs = cosines(X32, Y32)
lines.append("cosine %.12g" % cm)
lines.append("cosine_sd %.12g" % cs)
a, p = spectrum(Y32)
lines.append("anisotropy %.12g" % a)
lines.append("pca90 %d" % p)
lines.append("pair_cosine %.12g" % pair_cosine(Y32))
lines.append("twonn %.12g" % twonn(Y32))
lines.append("twonn_x %.12g" % twonn(X32))

# ---- the token embeddings of stories260K-ref.gguf ----
sys.path.insert(0, os.environ.get("GGUF_PY", "/tmp/llama.cpp/gguf-py"))
from gguf import GGUFReader  # noqa: E402

rd = GGUFReader(os.path.join(OUT, "stories260K-ref.gguf"))
emb = [t for t in rd.tensors if t.name == "token_embd.weight"][0]
E = np.array(emb.data, dtype=np.float32).reshape(int(emb.shape[1]), int(emb.shape[0]))
a, p = spectrum(E)
lines.append("embd_rows %d" % E.shape[0])
lines.append("embd_anisotropy %.12g" % a)
lines.append("embd_pca90 %d" % p)
lines.append("embd_pair_cosine %.12g" % pair_cosine(E))
lines.append("embd_twonn %.12g" % twonn(E))

# ---- Wanda (Sun et al. 2023) and magnitude masks of a small layer ----
# score_ij = |W_ij| * ||X_:,j||_2, per output row the lowest half removed; 2:4 removes
# the two lowest of every 4 consecutive inputs. Ties: the lower index goes first
# (a stable sort).
W = rng.standard_normal((8, 32)).astype(np.float32)
W[3, 4:8] = W[3, 0:4]  # equal magnitudes across groups
W[5, 9] = -W[5, 10]    # a tie inside a group
Xc = (rng.standard_normal((40, 32)) * rng.uniform(0.1, 3.0, 32)).astype(np.float32)
norm = np.sqrt((Xc.astype(np.float64) ** 2).sum(0)).astype(np.float32)
lines.append("wanda_w " + " ".join("%.9g" % v for v in W.ravel()))
lines.append("wanda_x " + " ".join("%.9g" % v for v in Xc.ravel()))


def mask_rows(score, frac):
    m = np.ones(score.shape, dtype=np.int32)
    k = int(np.floor(frac * score.shape[1]))
    for i in range(score.shape[0]):
        m[i, np.argsort(score[i], kind="stable")[:k]] = 0
    return m


def mask_nm(score, nn, mm):
    m = np.ones(score.shape, dtype=np.int32)
    for i in range(score.shape[0]):
        for g in range(0, score.shape[1], mm):
            m[i, g + np.argsort(score[i, g:g + mm], kind="stable")[:mm - nn]] = 0
    return m


wanda = np.abs(W) * norm[None, :]
mag = np.abs(W)
for name, m in (("wanda_50", mask_rows(wanda, 0.5)), ("wanda_2_4", mask_nm(wanda, 2, 4)),
                ("magnitude_50", mask_rows(mag, 0.5)), ("magnitude_2_4", mask_nm(mag, 2, 4)),
                ("wanda_30", mask_rows(wanda, 0.3))):
    lines.append(name + " " + "".join(str(v) for v in m.ravel()))

with open(os.path.join(OUT, "analysis_ref.txt"), "w") as f:
    f.write("# made by tests/data/gen_analysis.py (numpy %s)\n" % np.__version__)
    f.write("\n".join(lines) + "\n")
