#!/usr/bin/env python3
"""Plots scripts/bench_spec_lossy.sh's TSV as an SVG (no libraries needed):
left, mean accepted length against mean KL from the target; right, the
speed over plain decoding of the same invocation (tokens/s ratio; the plain
row heads each group of rows) against the same KL; one colour per scheme, solid without error
control, dashed with the budget; exact mode (KL 0) as a black dot.

    python3 scripts/plot_spec.py spec_lossy.tsv spec_lossy.svg
"""
import sys


def main():
    src, dst = sys.argv[1], sys.argv[2]
    rows = []
    with open(src) as f:
        head = f.readline().rstrip("\n").split("\t")
        for line in f:
            rows.append(dict(zip(head, line.rstrip("\n").split("\t"))))
    plain = None
    for r in rows:  # speed relative to the plain run of the same invocation
        if r["scheme"] == "plain":
            plain = float(r["tok_s"])
        r["speedup"] = "%.3f" % (float(r["tok_s"]) / plain) if plain else "-"
    exact = [r for r in rows if r["scheme"] == "exact"]
    curves = {}
    for r in rows:
        if r["scheme"] in ("plain", "exact"):
            continue
        curves.setdefault((r["scheme"], r["control"]), []).append(r)
    colours = {"lenient": "#1f77b4", "top-p": "#d62728", "near-max": "#2ca02c"}
    panels = [("mean_len", "mean accepted length"), ("speedup", "speed over plain decoding")]
    W, H, M = 420, 300, 50
    kl_max = max(float(r["mean_kl"]) for r in rows if r["mean_kl"] not in ("-", "")) * 1.05
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'font-family="sans-serif" font-size="11">' % (2 * W, H + 40)]
    out.append('<rect width="100%" height="100%" fill="white"/>')
    for p, (key, label) in enumerate(panels):
        x0 = p * W
        vals = [float(r[key]) for r in rows if r[key] not in ("-", "") and r["scheme"] != "plain"]
        y_max = max(vals) * 1.1

        def px(kl):
            return x0 + M + (W - 2 * M + 20) * kl / kl_max

        def py(v):
            return H - M + 20 - (H - M - 10) * v / y_max

        out.append('<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="black"/>' %
                   (px(0), py(0), px(kl_max), py(0)))
        out.append('<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="black"/>' %
                   (px(0), py(0), px(0), py(y_max)))
        for i in range(5):
            kl = kl_max * i / 4
            v = y_max * i / 4
            out.append('<text x="%g" y="%g" text-anchor="middle">%.3f</text>' %
                       (px(kl), py(0) + 14, kl))
            out.append('<text x="%g" y="%g" text-anchor="end">%.2f</text>' %
                       (px(0) - 4, py(v) + 4, v))
        out.append('<text x="%g" y="%g" text-anchor="middle">mean KL(P || p), nats per token'
                   '</text>' % ((px(0) + px(kl_max)) / 2, py(0) + 30))
        out.append('<text x="%g" y="14" text-anchor="middle" font-weight="bold">%s</text>' %
                   (x0 + W / 2, label))
        for (scheme, ctl), rs in sorted(curves.items()):
            pts = sorted((float(r["mean_kl"]), float(r[key])) for r in rs)
            d = " ".join("%g,%g" % (px(a), py(b)) for a, b in pts)
            out.append('<polyline points="%s" fill="none" stroke="%s" stroke-width="1.5"%s/>' %
                       (d, colours.get(scheme, "gray"),
                        ' stroke-dasharray="5,3"' if ctl != "none" else ""))
            for a, b in pts:
                out.append('<circle cx="%g" cy="%g" r="2.5" fill="%s"/>' %
                           (px(a), py(b), colours.get(scheme, "gray")))
        if exact:
            v = sorted(float(r[key]) for r in exact)[len(exact) // 2]
            out.append('<circle cx="%g" cy="%g" r="4" fill="black"/>' % (px(0), py(v)))
    ly = H + 30
    lx = 60
    for scheme, c in colours.items():
        out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/>' %
                   (lx, ly - 4, lx + 20, ly - 4, c))
        out.append('<text x="%d" y="%d">%s</text>' % (lx + 24, ly, scheme))
        lx += 110
    out.append('<text x="%d" y="%d">solid: no error control; dashed: budget; '
               'black dot: exact</text>' % (lx, ly))
    out.append("</svg>")
    with open(dst, "w") as f:
        f.write("\n".join(out) + "\n")


main()
