#!/usr/bin/env python3
"""Plot edgebench results: rate against sequence length, one line per case, the ceiling as a line.

    edgebench --sweep N=512..32768 --json run.json
    tools/plot-edgebench.py run.json -o run.svg          # or -o run.png
    tools/plot-edgebench.py cpu.json opencl.json -o both.svg

Reads one or more edgebench --json files (`edgebench --help-json` describes them). Prefill cases go
on one panel (FLOP/s, against the FMA or compute peak), decode cases on another (B/s of K/V read,
against the bandwidth ceiling); x is the case's length n on a log2 axis. Uses matplotlib when it can
be imported; otherwise (or with --no-matplotlib) it writes the SVG itself, so it runs on a bare
Python 3. PNG needs matplotlib.
"""
import argparse
import importlib.util
import json
import math
import os
import sys
from xml.sax.saxutils import escape

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
          "#17becf"]
PREFIXES = ["k", "M", "G", "T", "P"]  # index 2 is giga: the JSON's units


def unit_for(giga):
    """Index into PREFIXES that shows `giga` (a rate in giga-units) as 1 <= value < 1000."""
    u = 2
    if not giga or giga <= 0 or not math.isfinite(giga):
        return u
    while giga >= 999.5 and u < 4:
        giga /= 1e3
        u += 1
    while giga < 1.0 and u > 0:
        giga *= 1e3
        u -= 1
    return u


def fmt_num(v):
    if v >= 99.95:
        return "%.0f" % v
    if v >= 9.995:
        return "%.1f" % v
    if v >= 0.9995:
        return "%.2f" % v
    return "%.3g" % v


def fmt_len(n):
    """512, 1K, 32K, 1M: powers of two in K/M when they divide evenly."""
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return "%dM" % (n >> 20)
    if n >= 1024 and n % 1024 == 0:
        return "%dK" % (n >> 10)
    return str(n)


def load(paths):
    runs = []
    for p in paths:
        try:
            with open(p) as f:
                d = json.load(f)
        except (OSError, ValueError) as e:
            sys.exit("plot-edgebench: %s: %s" % (p, e))
        if d.get("tool") != "edgebench" or "cases" not in d:
            sys.exit("plot-edgebench: %s is not edgebench --json output" % p)
        d["_path"] = p
        runs.append(d)
    return runs


def run_label(d):
    b = d.get("backend", {})
    s = "%s %s" % (b.get("name", "?"), b.get("tier", ""))
    t = b.get("threads", "?")
    return "%s, %s, %s thread%s" % (s.strip(), b.get("device", "?"), t, "" if t == 1 else "s")


def shape_of(c):
    """The case's shape apart from its length: 'B4 Hq32/kv8 D128 causal f32/f16/f32'."""
    heads = "H%d" % c["Hq"] if c["Hq"] == c["Hkv"] else "Hq%d/kv%d" % (c["Hq"], c["Hkv"])
    parts = ["B%d" % c["B"]] if c.get("B", 1) > 1 else []
    parts += [heads, "D%d" % c["D"]]
    if (c["kind"] == "decode" and c.get("Nq", 1) > 1) or (c["kind"] == "prefill" and c.get("Nq") != c.get("Nkv")):
        parts.append("Nq%d" % c["Nq"])  # n is Nkv
    if c["kind"] == "prefill" and c.get("causal"):
        parts.append("causal")
    parts.append("%s/%s/%s" % (c["q"], c["kv"], c["out"]))
    return " ".join(parts)


def spread(c, field):
    """The rates at the p90 and p10 times (slowest and fastest tenth), or the median's where absent."""
    r, med = c[field], c.get("median_ms")
    p10, p90 = c.get("p10_ms"), c.get("p90_ms")
    if not (med and p10 and p90):
        return (r, r)
    return (r * med / p90, r * med / p10)


def build_panels(runs):
    """The panels to draw: kind, y unit, series (label, color, points) and ceilings."""
    several = len(runs) > 1
    labels = [run_label(d) for d in runs]
    distinct = len(set(labels)) == len(labels)
    panels = []
    color_of = {}
    for kind, field, what, ceil_field in (("prefill", "gflops", "FLOP/s", "prefill_gflops"),
                                          ("decode", "gbs", "B/s", "decode_gbs")):
        series, ceilings = [], []
        for ri, d in enumerate(runs):
            tag = ""
            if several:
                tag = " [%s]" % (labels[ri] if distinct else os.path.basename(d["_path"]))
            groups = {}
            for c in d["cases"]:
                if c.get("kind") != kind or c.get(field) is None:
                    continue
                groups.setdefault(c["name"], []).append(c)
            if not groups:
                continue
            for name, cs in groups.items():
                cs.sort(key=lambda c: c["n"])
                key = (ri, name)
                if key not in color_of:
                    color_of[key] = COLORS[len(color_of) % len(COLORS)]
                pts = [(c["n"], c[field], bool(c.get("over_bound")), bool(c.get("in_llc"))) + spread(c, field)
                       for c in cs]
                series.append({"label": "%s: %s%s" % (name, shape_of(cs[0]), tag), "color": color_of[key],
                               "points": pts})
            ce = d.get("ceiling") or {}
            v = ce.get(ceil_field)
            if v:
                if kind == "prefill":
                    what_c = "FMA peak (%s)" % ce["fma_isa"] if ce.get("fma_isa") else \
                        "compute peak (%s)" % ce.get("gpu_compute_what", "")
                else:
                    what_c = "streaming read" if ce.get("read_gbs") else "device copy (read + write)"
                ceilings.append({"value": v, "label": what_c, "tag": tag})
        if not series:
            continue
        top = max([p[5] for s in series for p in s["points"]] + [c["value"] for c in ceilings])
        bottom = min([p[4] for s in series for p in s["points"] if p[4] > 0] + [c["value"] for c in ceilings])
        u = unit_for(top)
        panels.append({"kind": kind, "unit": u, "scale": 1000.0 ** (2 - u), "ylabel": PREFIXES[u] + what,
                       "series": series, "ceilings": ceilings, "top": top,
                       "bottom": bottom})
    return panels


def samples_of(runs):
    n = sorted(set(c.get("samples") for d in runs for c in d["cases"] if c.get("samples")))
    return "/".join(str(x) for x in n) if n else "?"


def title_of(runs, override):
    if override:
        return override
    labels = sorted(set(run_label(d) for d in runs))
    version = runs[0].get("version", "")
    head = "edgeattn %s" % version if version else "edgeattn"
    if len(labels) == 1:
        return "%s: %s" % (head, labels[0])
    return "%s: %d runs" % (head, len(runs))


def nice_ticks(top, count=5):
    """Round steps from 0 to at least top."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    n = int(math.ceil(top / step - 1e-9))
    return [i * step for i in range(n + 1)]


def log_ticks(lo, hi):
    """Powers of ten covering [lo, hi] for a log y axis."""
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    if a == b:
        b = a + 1
    return [10.0 ** e for e in range(a, b + 1)]


def x_ticks(panel):
    xs = sorted(set(p[0] for s in panel["series"] for p in s["points"]))
    if len(xs) > 12:  # too many to label: powers of two only
        lo, hi = int(math.floor(math.log2(xs[0]))), int(math.ceil(math.log2(xs[-1])))
        xs = [1 << e for e in range(lo, hi + 1)]
    return xs


# ---------------------------------------------------------------- matplotlib
def plot_matplotlib(runs, panels, args):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FixedLocator, NullLocator

    entries = max(len(pn["series"]) + 3 for pn in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(6.4 * len(panels), 4.6 + 0.2 * entries), squeeze=False,
                             layout="constrained")
    legends = []
    for ax, pn in zip(axes[0], panels):
        sc = pn["scale"]
        any_over = any_llc = False
        for s in pn["series"]:
            xs = [p[0] for p in s["points"]]
            ys = [p[1] * sc for p in s["points"]]
            ax.plot(xs, ys, "-", color=s["color"], lw=1.6, label=s["label"])
            lo = [y - p[4] * sc for y, p in zip(ys, s["points"])]
            hi = [p[5] * sc - y for y, p in zip(ys, s["points"])]
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt="none", ecolor=s["color"], elinewidth=1, capsize=3, alpha=0.7)
            for x, y, over, llc in ((p[0], p[1] * sc, p[2], p[3]) for p in s["points"]):
                ax.plot([x], [y], "o", ms=5, color=s["color"], mfc="white" if llc else s["color"])
                if over:
                    ax.plot([x], [y], "x", ms=10, mew=2, color="#d62728")
                any_over |= over
                any_llc |= llc
        for i, c in enumerate(pn["ceilings"]):
            v = c["value"] * sc
            ax.axhline(v, color="black", lw=1.2, ls=("--", ":", "-.")[i % 3])
            ax.annotate("%s %s %s%s" % (c["label"], fmt_num(v), pn["ylabel"], c["tag"]), xy=(0.01, v), xycoords=("axes fraction",
                        "data"), xytext=(2, 3), textcoords="offset points", fontsize=8)
        ax.set_xscale("log", base=2)
        xt = x_ticks(pn)
        ax.xaxis.set_major_locator(FixedLocator(xt))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([fmt_len(x) for x in xt])
        if args.logy:
            ax.set_yscale("log")
            ax.set_ylim(pn["bottom"] * sc / 1.6, pn["top"] * sc * 1.6)
        else:
            ax.set_ylim(0, pn["top"] * sc * 1.12)
        ax.set_xlabel("sequence length n (prefill Nq = Nkv, decode Nkv)")
        ax.set_ylabel(pn["ylabel"])
        ax.set_title(pn["kind"], fontsize=11)
        ax.grid(True, which="major", alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        if any_over:
            handles.append(Line2D([], [], ls="", marker="x", color="#d62728", mew=2))
            labels.append("error over its bound")
        if any_llc:
            handles.append(Line2D([], [], ls="", marker="o", color="gray", mfc="white"))
            labels.append("K/V fit in the last-level cache")
        handles.append(Line2D([], [], color="gray", marker="|", ms=10, ls=""))
        labels.append("bars: p10..p90 of %s samples" % samples_of(runs))
        # under the panel, so that it never hides a point
        legends.append(ax.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(0.0, -0.13)))
    fig.suptitle(title_of(runs, args.title), fontsize=12)
    fig.savefig(args.output, dpi=args.dpi)


# ---------------------------------------------------------------- SVG by hand
def plot_svg(runs, panels, args):
    pw, ph = 560, 400  # one panel
    ml, mr, mt, mb = 70, 20, 60, 55  # margins of a panel's plot area
    entries = max(len(pn["series"]) + 1 + any(p[2] for s in pn["series"] for p in s["points"]) +
                  any(p[3] for s in pn["series"] for p in s["points"]) for pn in panels)  # legend lines under a panel
    width, height = pw * len(panels), ph + 24 + 16 * entries + 24
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
           'font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="11">' % (width, height, width, height),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="22" text-anchor="middle" font-size="14">%s</text>' % (width // 2,
                                                                                 escape(title_of(runs, args.title)))]
    for i, pn in enumerate(panels):
        x0, y0 = i * pw + ml, mt
        w, h = pw - ml - mr, ph - mt - mb + 24
        sc = pn["scale"]
        xs_all = [p[0] for s in pn["series"] for p in s["points"]]
        lx0, lx1 = math.log2(min(xs_all)), math.log2(max(xs_all))
        if lx1 - lx0 < 1e-9:
            lx0, lx1 = lx0 - 1, lx1 + 1
        pad = 0.05 * (lx1 - lx0)
        lx0, lx1 = lx0 - pad, lx1 + pad
        vals = [p[5] * sc for s in pn["series"] for p in s["points"]] + [c["value"] * sc for c in pn["ceilings"]]
        if args.logy:
            yt = log_ticks(pn["bottom"] * sc, max(vals))
            ly0, ly1 = math.log10(yt[0]), math.log10(yt[-1])

            def Y(v, ly0=ly0, ly1=ly1):
                return y0 + h - (math.log10(max(v, 10.0 ** ly0)) - ly0) / (ly1 - ly0) * h
        else:
            yt = nice_ticks(max(vals) * 1.08)

            def Y(v, top=yt[-1]):
                return y0 + h - v / top * h

        def X(n, lx0=lx0, lx1=lx1):
            return x0 + (math.log2(n) - lx0) / (lx1 - lx0) * w

        out.append('<text x="%d" y="%d" text-anchor="middle" font-size="12">%s</text>' % (x0 + w // 2, y0 - 12,
                                                                                          pn["kind"]))
        for v in yt:  # grid and y labels
            y = Y(v)
            out.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>' % (x0, y, x0 + w, y))
            out.append('<text x="%.1f" y="%.1f" text-anchor="end">%s</text>' % (x0 - 6, y + 4, "%g" % v))
        for n in x_ticks(pn):
            x = X(n)
            out.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>' % (x, y0, x, y0 + h))
            out.append('<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>' % (x, y0 + h + 16, fmt_len(n)))
        out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="black"/>' % (x0, y0, w, h))
        out.append('<text x="%.1f" y="%.1f" text-anchor="middle">sequence length n (prefill Nq = Nkv, decode Nkv)'
                   '</text>' % (x0 + w / 2, y0 + h + 36))
        out.append('<text transform="translate(%d,%.1f) rotate(-90)" text-anchor="middle">%s</text>' %
                   (i * pw + 18, y0 + h / 2, escape(pn["ylabel"])))
        for j, c in enumerate(pn["ceilings"]):
            v = c["value"] * sc
            y = Y(v)
            out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="black" stroke-width="1.2" '
                       'stroke-dasharray="%s"/>' % (x0, y, x0 + w, y, ("6,4", "2,3", "8,3,2,3")[j % 3]))
            out.append('<text x="%d" y="%.1f" font-size="10">%s</text>' %
                       (x0 + 4, y - 4, escape("%s %s %s%s" % (c["label"], fmt_num(v), pn["ylabel"], c["tag"]))))
        legend = []
        any_over = any_llc = False
        for s in pn["series"]:
            pts = [(X(p[0]), Y(p[1] * sc), p[2], p[3]) for p in s["points"]]
            out.append('<polyline fill="none" stroke="%s" stroke-width="1.6" points="%s"/>' %
                       (s["color"], " ".join("%.1f,%.1f" % (x, y) for x, y, _, _ in pts)))
            for p in s["points"]:  # p10..p90 bars
                x, ylo, yhi = X(p[0]), Y(p[4] * sc), Y(p[5] * sc)
                if abs(ylo - yhi) > 1:
                    out.append('<path d="M%.1f,%.1f V%.1f M%.1f,%.1f h6 M%.1f,%.1f h6" stroke="%s" stroke-width="1" '
                               'opacity="0.7"/>' % (x, ylo, yhi, x - 3, ylo, x - 3, yhi, s["color"]))
            for x, y, over, llc in pts:
                out.append('<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s" stroke="%s" stroke-width="1.5"/>' %
                           (x, y, "white" if llc else s["color"], s["color"]))
                if over:
                    out.append('<path d="M%.1f,%.1f l10,10 m0,-10 l-10,10" stroke="#d62728" stroke-width="2"/>' %
                               (x - 5, y - 5))
                any_over |= over
                any_llc |= llc
            legend.append((s["color"], s["label"], "line"))
        if any_over:
            legend.append(("#d62728", "error over its bound", "x"))
        if any_llc:
            legend.append(("gray", "K/V fit in the last-level cache", "hollow"))
        legend.append(("gray", "bars: p10..p90 of %s samples" % samples_of(runs), "bar"))
        lw = 12 + 6.2 * max(len(t) for _, t, _ in legend) + 30
        lh = 16 * len(legend) + 8
        lx, ly = x0, y0 + h + 48  # under the panel, clear of the data
        lw = min(lw, w)
        out.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%d" fill="none" stroke="#bbb"/>' % (lx, ly, lw, lh))
        for k, (color, text, style) in enumerate(legend):
            yy = ly + 14 + 16 * k
            if style == "line":
                out.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="1.6"/>'
                           '<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"/>' %
                           (lx + 6, yy - 4, lx + 30, yy - 4, color, lx + 18, yy - 4, color))
            elif style == "bar":
                out.append('<path d="M%.1f,%.1f V%.1f M%.1f,%.1f h6 M%.1f,%.1f h6" stroke="%s" stroke-width="1"/>' %
                           (lx + 18, yy - 10, yy + 2, lx + 15, yy - 10, lx + 15, yy + 2, color))
            elif style == "x":
                out.append('<path d="M%.1f,%.1f l10,10 m0,-10 l-10,10" stroke="%s" stroke-width="2"/>' %
                           (lx + 13, yy - 9, color))
            else:
                out.append('<circle cx="%.1f" cy="%.1f" r="3.5" fill="white" stroke="%s" stroke-width="1.5"/>' %
                           (lx + 18, yy - 4, color))
            out.append('<text x="%.1f" y="%.1f">%s</text>' % (lx + 36, yy, escape(text)))
    out.append("</svg>")
    with open(args.output, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser(description="Plot edgebench --json results: rate against sequence length per "
                                 "case, with the measured ceiling as a line.")
    ap.add_argument("json", nargs="+", help="edgebench --json output file(s)")
    ap.add_argument("-o", "--output", default="edgebench.svg", help="output .svg or .png (default edgebench.svg)")
    ap.add_argument("--title", help="title (default: library version, backend, tier, device, threads)")
    ap.add_argument("--logy", action="store_true", help="log y axis (cases far apart in rate)")
    ap.add_argument("--dpi", type=int, default=120, help="PNG resolution (default 120)")
    ap.add_argument("--no-matplotlib", action="store_true", help="write the SVG without matplotlib")
    args = ap.parse_args()

    runs = load(args.json)
    panels = build_panels(runs)
    if not panels:
        sys.exit("plot-edgebench: no cases with a rate in %s" % ", ".join(args.json))
    ext = os.path.splitext(args.output)[1].lower()
    use_mpl = not args.no_matplotlib
    if use_mpl:
        use_mpl = importlib.util.find_spec("matplotlib") is not None
    if use_mpl:
        plot_matplotlib(runs, panels, args)
    elif ext == ".svg":
        plot_svg(runs, panels, args)
    else:
        sys.exit("plot-edgebench: %s output needs matplotlib (pip install matplotlib), or write .svg" % (ext or
                 "this"))
    print(args.output)


if __name__ == "__main__":
    main()
