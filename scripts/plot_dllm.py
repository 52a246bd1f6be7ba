#!/usr/bin/env python3
"""Plots perplexity against the executed-layer fraction from the TSV files
scripts/bench_dllm.sh writes: one panel per model, a log perplexity axis, the
trained router, random skipping and static layer removal (its points, and
interpolated to each router's fraction). Writes an SVG (standard library
only) and prints the numbers as a Markdown table, each router row with its
perplexity relative to random skipping and to static removal at the same
executed fraction.

usage: scripts/plot_dllm.py OUT.svg A.tsv [B.tsv ...]
"""
import math
import sys

COLORS = {"router": "#1f77b4", "random": "#ff7f0e", "static": "#2ca02c",
          "static-interp": "#98df8a", "full": "#000000"}


def read(path):
    rows = []
    for line in open(path):
        if line.startswith("#") or line.startswith("model\t") or not line.strip():
            continue
        m, method, keep, frac, ppl, flops, kv = line.rstrip("\n").split("\t")
        rows.append((m, method, float(keep), float(frac), float(ppl), float(flops), int(kv)))
    return rows


def main():
    out, paths = sys.argv[1], sys.argv[2:]
    panels = [read(p) for p in paths]
    pw, ph, ml, mt, mb = 300, 240, 55, 30, 45
    width = len(panels) * (pw + ml + 10) + 10
    height = ph + mt + mb + 30
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
         f'font-family="sans-serif" font-size="11">',
         '<rect width="100%" height="100%" fill="white"/>']
    for i, rows in enumerate(panels):
        if not rows:
            continue
        x0 = 10 + i * (pw + ml + 10) + ml
        ppls = [r[4] for r in rows]
        lo, hi = math.log(min(ppls)) - 0.1, math.log(max(ppls)) + 0.1
        fx = lambda f: x0 + (f - 0.2) / 0.8 * pw
        fy = lambda p: mt + ph - (math.log(p) - lo) / (hi - lo) * ph
        s.append(f'<rect x="{x0}" y="{mt}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>')
        s.append(f'<text x="{x0 + pw / 2}" y="{mt - 10}" text-anchor="middle" '
                 f'font-size="13">{rows[0][0]}</text>')
        for f in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0):
            s.append(f'<text x="{fx(f)}" y="{mt + ph + 14}" text-anchor="middle">{f:.1f}</text>')
        s.append(f'<text x="{x0 + pw / 2}" y="{mt + ph + 30}" text-anchor="middle">'
                 'executed layer fraction</text>')
        t = math.exp(lo)
        ticks = sorted({round(math.exp(lo + k * (hi - lo) / 5), 1) for k in range(6)})
        for t in ticks:
            s.append(f'<text x="{x0 - 4}" y="{fy(t) + 4}" text-anchor="end">{t:g}</text>')
            s.append(f'<line x1="{x0}" x2="{x0 + pw}" y1="{fy(t)}" y2="{fy(t)}" stroke="#eee"/>')
        s.append(f'<text transform="translate({x0 - 42},{mt + ph / 2}) rotate(-90)" '
                 'text-anchor="middle">perplexity (log)</text>')
        for method, col in COLORS.items():
            pts = sorted((r[3], r[4]) for r in rows if r[1] == method)
            if not pts:
                continue
            if len(pts) > 1 and method != "static-interp":
                d = " ".join(f"{fx(f):.1f},{fy(p):.1f}" for f, p in pts)
                s.append(f'<polyline points="{d}" fill="none" stroke="{col}" stroke-width="1.5"/>')
            for f, p in pts:
                s.append(f'<circle cx="{fx(f):.1f}" cy="{fy(p):.1f}" r="3" fill="{col}"/>')
        for k, (method, col) in enumerate(COLORS.items()):
            s.append(f'<circle cx="{x0 + 10}" cy="{mt + 12 + k * 14}" r="3" fill="{col}"/>'
                     f'<text x="{x0 + 18}" y="{mt + 16 + k * 14}">{method}</text>')
    s.append("</svg>")
    open(out, "w").write("\n".join(s) + "\n")
    print("| model | method | keep | executed | ppl | ppl / full | FLOPs/token vs full "
          "| KV bytes vs full | router ppl / random | router ppl / static |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for rows in panels:
        full = [r for r in rows if r[1] == "full"][0]
        for r in rows:
            vs = " | |"
            if r[1] == "router":
                same = {m: [q for q in rows if q[1] == m and q[2] == r[2]]
                        for m in ("random", "static-interp")}
                if same["random"] and same["static-interp"]:
                    vs = (f" {r[4] / same['random'][0][4]:.3f} |"
                          f" {r[4] / same['static-interp'][0][4]:.3f} |")
            print(f"| {r[0]} | {r[1]} | {r[2]:g} | {r[3]:.3f} | {r[4]:.2f} | {r[4] / full[4]:.2f} "
                  f"| {r[5] / full[5]:.2f} | {r[6] / full[6]:.2f} |{vs}")


if __name__ == "__main__":
    main()
