"""Inline SVG charts for the corpus dashboard: no script, no CDN, every label escaped.

Each chart is an ``<svg class="chart" data-chart=NAME>`` with a <title> per mark, so a reader
hovering a bar or cell sees its exact number and a test can count the marks.
"""

from __future__ import annotations

from html import escape

from spinlens.corpus.queries import Matrix, Series

# Colour-blind-safe palette (Okabe-Ito, then Tol's muted), one colour per series.
PALETTE = [
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442",
    "#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#882255", "#AA4499", "#777777",
]  # fmt: skip
FONT = 'font-family="system-ui, sans-serif" font-size="11"'


def heatmap(name: str, matrix: Matrix, *, percent: bool) -> str:
    """Rows × columns of cells shaded by value (a share when ``percent``, else a count)."""
    if not matrix.rows or not matrix.columns:
        return _empty(name)
    cell, left, top = 34, 170, 150
    # Room on the right for the last column's label, drawn at 45 degrees.
    width = left + cell * len(matrix.columns) + 120
    height = top + cell * len(matrix.rows) + 10
    peak = max((v for row in matrix.values for v in row), default=0) or 1
    parts = [_open(name, width, height)]
    for j, column in enumerate(matrix.columns):
        x = left + j * cell + cell / 2
        parts.append(
            f'<text x="{x:.0f}" y="{top - 6}" transform="rotate(-45 {x:.0f} {top - 6})" {FONT}>'
            f"{escape(_short(column, 28))}<title>{escape(column)}</title></text>"
        )
    for i, row in enumerate(matrix.rows):
        y = top + i * cell
        parts.append(
            f'<text x="{left - 6}" y="{y + cell / 2 + 4:.0f}" text-anchor="end" {FONT}>'
            f"{escape(_short(row, 26))}<title>{escape(row)}</title></text>"
        )
        for j, value in enumerate(matrix.values[i]):
            shade = value / peak
            label = f"{value:.0%}" if percent else f"{value:.0f}"
            ink = "#fff" if shade > 0.55 else "#222"
            x = left + j * cell
            parts.append(
                f'<g class="cell"><rect x="{x}" y="{y}" width="{cell - 2}" height="{cell - 2}" '
                f'fill="{_blue(shade)}"><title>{escape(matrix.notes[i][j])}</title></rect>'
                f'<text x="{x + (cell - 2) / 2:.0f}" y="{y + cell / 2 + 3:.0f}" '
                f'text-anchor="middle" fill="{ink}" font-size="9" '
                f'font-family="system-ui, sans-serif">{escape(label) if value else ""}</text></g>'
            )
    parts.append("</svg>")
    return "".join(parts)


def stacked_bars(name: str, data: Series) -> str:
    """One bar per period, stacked by series, with a legend."""
    if not data.periods or not data.series:
        return _empty(name)
    left, top, plot_h, legend_row = 44, 12, 220, 16
    bar = max(4, min(28, 760 // len(data.periods)))
    width = max(420, left + bar * len(data.periods) + 20)
    legend_top = top + plot_h + 84  # below the period labels, drawn at 40 degrees
    height = legend_top + legend_row * ((len(data.series) + 2) // 3) + 8
    totals = [sum(values[k] for _, values in data.series) for k in range(len(data.periods))]
    peak = max(totals) or 1
    parts = [_open(name, width, height)]
    for tick in _ticks(peak):
        y = top + plot_h - plot_h * tick / peak
        parts.append(
            f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" {FONT}>{tick}</text>'
        )
    label_every = max(1, len(data.periods) // 12)
    for k, period in enumerate(data.periods):
        x = left + k * bar
        base = float(top + plot_h)
        for s, (label, values) in enumerate(data.series):
            if not values[k]:
                continue
            h = plot_h * values[k] / peak
            base -= h
            parts.append(
                f'<rect class="bar" x="{x + 1}" y="{base:.1f}" width="{bar - 2}" '
                f'height="{h:.1f}" fill="{PALETTE[s % len(PALETTE)]}">'
                f"<title>{escape(f'{period} · {label}: {values[k]}')}</title></rect>"
            )
        if k % label_every == 0:
            y = top + plot_h + 12
            parts.append(
                f'<text x="{x + bar / 2:.0f}" y="{y}" transform="rotate(-40 {x + bar / 2:.0f} '
                f'{y})" text-anchor="end" {FONT}>{escape(period)}</text>'
            )
    for s, (label, _) in enumerate(data.series):
        x = 10 + (s % 3) * ((width - 20) // 3)
        y = legend_top + (s // 3) * legend_row
        parts.append(
            f'<g class="legend"><rect x="{x}" y="{y - 9}" width="10" height="10" '
            f'fill="{PALETTE[s % len(PALETTE)]}"/><text x="{x + 14}" y="{y}" {FONT}>'
            f"{escape(_short(label, 40))}<title>{escape(label)}</title></text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _open(name: str, width: float, height: float) -> str:
    return (
        f'<svg class="chart" data-chart="{escape(name)}" xmlns="http://www.w3.org/2000/svg" '
        f'width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'role="img">'
    )


def _empty(name: str) -> str:
    return (
        f'<svg class="chart empty" data-chart="{escape(name)}" xmlns="http://www.w3.org/2000/svg" '
        f'width="420" height="40"><text x="10" y="24" {FONT} fill="#666">nothing to show</text>'
        "</svg>"
    )


def _blue(shade: float) -> str:
    """White to deep blue."""
    low, high = (247, 251, 255), (8, 69, 148)
    r, g, b = (round(a + (z - a) * shade) for a, z in zip(low, high, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


def _ticks(peak: int) -> list[int]:
    step = max(1, peak // 4)
    return list(range(0, peak + 1, step))


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
