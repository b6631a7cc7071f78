"""One trace's spans drawn as a waterfall, in SVG: a row per span, in order of start, its bar
placed on a common time axis, its name and the process it ran in beside it.

    svg(spans, {web_pid: "web"})  # spans as support/receivers.py's OtlpReceiver keeps them
"""

from html import escape

ROW, LABEL, PLOT, TOP = 24, 380, 520, 30  # pixels: row height, label and plot widths, axis
COLORS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52")  # by process, in order of appearance


def ticks(total_ms):
    """Round milliseconds for the axis: at most five steps of 1, 2 or 5 times a power of ten."""
    steps = (10.0**power * m for power in range(-3, 7) for m in (1, 2, 5))
    step = next(step for step in steps if total_ms / step <= 5)
    return [step * i for i in range(int(total_ms / step) + 1)]


def svg(spans, names):
    """The waterfall of `spans` (one trace); `names` names processes by pid, the others are
    "worker pool process"."""
    spans = sorted(spans, key=lambda span: span["start"])
    start, end = spans[0]["start"], max(span["end"] for span in spans)
    total_ms = max((end - start) / 1e6, 1e-3)
    scale = PLOT / total_ms
    processes = list(dict.fromkeys(span["pid"] for span in spans))
    height = TOP + ROW * len(spans) + 10
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{LABEL + PLOT + 20}" height="{height}"'
        ' font-family="sans-serif" font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
    ]
    for ms in ticks(total_ms):
        x = LABEL + ms * scale
        out.append(f'<line x1="{x:.1f}" y1="{TOP - 6}" x2="{x:.1f}" y2="{height}" stroke="#ddd"/>')
        out.append(f'<text x="{x:.1f}" y="{TOP - 10}" text-anchor="middle">{ms:g} ms</text>')
    for row, span in enumerate(spans):
        y = TOP + row * ROW
        process = names.get(span["pid"], "worker pool process")
        color = COLORS[processes.index(span["pid"]) % len(COLORS)]
        x = LABEL + (span["start"] - start) / 1e6 * scale
        width = max((span["end"] - span["start"]) / 1e6 * scale, 1)
        label = escape(f"{span['name']} ({process})")
        out.append(f'<text x="4" y="{y + 16}">{label}</text>')
        out.append(
            f'<rect x="{x:.1f}" y="{y + 4}" width="{width:.1f}" height="{ROW - 8}" fill="{color}"/>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"
