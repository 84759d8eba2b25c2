"""Chart geometry for the report pages: plain numbers that templates draw as SVG (no JS, no CDN).

Pure: no Flask, no database. Each function takes report rows and returns the positions of
every mark, the axis ticks and the chart's size; the templates escape every label.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Colour-blind-safe (Okabe-Ito) colours, each verdict also with its own marker shape. NOTE: the
# verdicts themselves (and their order) are the domain's VERDICTS; a test keeps these keys equal.
VERDICT_STYLE = {
    "shortens": {"shape": "circle", "label": "shortens the stage"},
    "lengthens": {"shape": "triangle", "label": "lengthens the stage"},
    "no_evidence": {"shape": "square", "label": "no evidence either way"},
    "insufficient_data": {"shape": "none", "label": "not enough data"},
}

ROW_HEIGHT = 22
LINE_HEIGHT = 15
TOP = 34
BOTTOM = 34
LOG_TICKS = (0.1, 0.2, 0.5, 1, 2, 5, 10)


@dataclass(frozen=True)
class Layout:
    """Where a chart's row labels go: beside the marks (wide screens) or above them (phones).

    Widths are in SVG units drawn at one CSS pixel each on the widest screens; the page shows
    the wide chart from 700 px up and the narrow one below, each scaled down by at most ~20%,
    so 12-unit text stays at 10 px or more on screen (tests/browser measure it).
    """

    name: str
    label_width: int  # 0: labels sit above the marks
    plot_width: int
    chars_per_line: int  # of a 12-unit label
    max_lines: int


WIDE = Layout("wide", label_width=400, plot_width=420, chars_per_line=52, max_lines=3)
NARROW = Layout("narrow", label_width=0, plot_width=300, chars_per_line=44, max_lines=4)
LAYOUTS = (WIDE, NARROW)
# NOTE: kept for callers that size things by the wide chart.
LABEL_WIDTH = WIDE.label_width
PLOT_WIDTH = WIDE.plot_width


def chart_pair(chart, rows: list[dict], *args, **kwargs) -> dict:
    """The chart in both layouts, {"wide": ..., "narrow": ...}: the page's CSS shows one of them."""
    return {layout.name: chart(rows, *args, layout=layout, **kwargs) for layout in LAYOUTS}


def wrap_label(text: str, chars: int, max_lines: int) -> list[str]:
    """A label in lines of at most `chars` characters, broken between words (a word longer than
    a line is broken inside it); past max_lines the last line ends in "…"."""
    words = (text or "").split()
    lines: list[str] = []
    current = ""
    for word in words:
        while len(word) > chars:
            if current:
                lines.append(current)
                current = ""
            lines.append(word[: chars - 1] + "-")
            word = word[chars - 1 :]
        candidate = f"{current} {word}".strip()
        if len(candidate) <= chars:
            current = candidate
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        last = lines[max_lines - 1]
        lines = lines[: max_lines - 1] + [(last[: chars - 1].rstrip() + "…")]
    return lines or [""]


def _rows_geometry(labels: list[str], layout: Layout) -> list[dict]:
    """Each row's top, height, label lines and the y of its marks (after its label, on a phone)."""
    rows = []
    y = TOP
    for label in labels:
        lines = wrap_label(label, layout.chars_per_line, layout.max_lines)
        if layout.label_width:
            height = max(ROW_HEIGHT, len(lines) * LINE_HEIGHT + 7)
            mark_y = y + height / 2
            first = mark_y - (len(lines) - 1) * LINE_HEIGHT / 2 + 4
        else:
            height = len(lines) * LINE_HEIGHT + ROW_HEIGHT + 4
            mark_y = y + len(lines) * LINE_HEIGHT + ROW_HEIGHT / 2 + 2
            first = y + 12
        rows.append(
            {
                "top": y,
                "height": height,
                "mark_y": round(mark_y, 1),
                "lines": [
                    {"text": t, "y": round(first + i * LINE_HEIGHT, 1)} for i, t in enumerate(lines)
                ],
            }
        )
        y += height
    return rows


def _clamp(value: float, low: float, high: float) -> float:
    """value kept inside [low, high]."""
    return max(low, min(high, value))


def forest_plot(rows: list[dict], layout: Layout = WIDE) -> dict:
    """Hazard ratios with confidence intervals on a log axis; one row per fitted (asset, stage).

    Rows without a hazard ratio (insufficient data) are not drawn: the page lists them apart.
    An interval reaching past the axis is cut at its edge and flagged (`cut_low`/`cut_high`).
    Labels ("title · stage") are wrapped whole between words, never cut mid-word.
    """
    drawn = [r for r in rows if _finite(r.get("hazard_ratio"))]
    lows = [r["ci_low"] for r in drawn if _finite(r.get("ci_low")) and r["ci_low"] > 0]
    highs = [r["ci_high"] for r in drawn if _finite(r.get("ci_high"))]
    low = _clamp(min(lows + [0.5]), 0.1, 1.0)
    high = _clamp(max(highs + [2.0]), 1.0, 10.0)
    lo_log, hi_log = math.log(low), math.log(high)
    left = layout.label_width + (0 if layout.label_width else 10)
    right = left + layout.plot_width - (20 if not layout.label_width else 0)

    def x(value: float) -> float:
        """The horizontal position of a hazard ratio."""
        t = (math.log(_clamp(value, low, high)) - lo_log) / (hi_log - lo_log)
        return round(left + t * (right - left), 1)

    geometry = _rows_geometry(
        [f"{r.get('title') or ''} · {r.get('buying_stage') or ''}" for r in drawn], layout
    )
    marks = []
    for r, g in zip(drawn, geometry, strict=True):
        y = g["mark_y"]
        ci_low = r.get("ci_low") if _finite(r.get("ci_low")) and r["ci_low"] > 0 else None
        ci_high = r.get("ci_high") if _finite(r.get("ci_high")) else None
        marks.append(
            {
                **r,
                "y": y,
                "lines": g["lines"],
                "x": x(r["hazard_ratio"]),
                "x_low": x(ci_low) if ci_low is not None else None,
                "x_high": x(ci_high) if ci_high is not None else None,
                "cut_low": ci_low is not None and ci_low < low,
                "cut_high": ci_high is not None and ci_high > high,
                "shape": VERDICT_STYLE.get(r.get("verdict"), VERDICT_STYLE["no_evidence"])["shape"],
                "triangle": _triangle(x(r["hazard_ratio"]), y),
            }
        )
    body = sum(g["height"] for g in geometry)
    height = TOP + body + BOTTOM
    ticks = [{"x": x(t), "label": f"{t:g}"} for t in LOG_TICKS if low <= t <= high]
    return {
        "layout": layout.name,
        "width": layout.label_width + layout.plot_width + 20,
        "height": height,
        "marks": marks,
        "ticks": ticks,
        "one": x(1.0),
        "plot_left": left,
        "plot_right": right,
        "label_x": layout.label_width - 10 if layout.label_width else 10,
        "label_anchor": "end" if layout.label_width else "start",
        "axis_y": height - BOTTOM,
        "title": (
            "← lengthens the stage · hazard ratio (log) · shortens it →"
            if layout.label_width
            else "← lengthens · hazard ratio (log) · shortens →"
        ),
    }


def _triangle(x: float, y: float, r: float = 6) -> str:
    """SVG points of an upward triangle centred on (x, y)."""
    return f"{x:.1f},{y - r:.1f} {x - r:.1f},{y + r * 0.8:.1f} {x + r:.1f},{y + r * 0.8:.1f}"


def _finite(value) -> bool:
    """True for a real, finite number."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def bar_chart(
    rows: list[dict],
    value: str,
    *,
    low: str | None = None,
    high: str | None = None,
    label: str = "label",
    layout: Layout = WIDE,
) -> dict:
    """Horizontal bars of `value` per row (rows without a value are listed, not drawn).

    `low`/`high` name an interval drawn as a whisker over the bar (e.g. the quartiles).
    """
    bar_width = layout.plot_width - 60  # room for the number past the bar
    left = layout.label_width or 10
    values = [r[value] for r in rows if _finite(r.get(value))]
    values += [r[high] for r in rows if high and _finite(r.get(high))]
    peak = max(values + [1])
    scale = bar_width / peak
    bar_height = ROW_HEIGHT - 6
    geometry = _rows_geometry([str(r.get(label) or "") for r in rows], layout)
    bars = []
    for r, g in zip(rows, geometry, strict=True):
        y = g["mark_y"] - bar_height / 2
        v = r.get(value)
        ends = [left + v * scale if _finite(v) else left]
        if high and _finite(r.get(high)):
            ends.append(left + r[high] * scale)
        bars.append(
            {
                "row": r,
                "label": r.get(label),
                "lines": g["lines"],
                "y": round(y, 1),
                "text_y": round(g["mark_y"] + 4, 1),
                "drawn": _finite(v),
                "width": round(v * scale, 1) if _finite(v) else 0,
                "value": v,
                # NOTE: the number sits past the whisker, so the line never runs through it.
                "text_x": round(max(ends) + 6, 1),
                "x_low": round(left + r[low] * scale, 1) if low and _finite(r.get(low)) else None,
                "x_high": round(left + r[high] * scale, 1)
                if high and _finite(r.get(high))
                else None,
            }
        )
    ticks = _nice_ticks(peak)
    height = TOP + sum(g["height"] for g in geometry) + BOTTOM
    return {
        "layout": layout.name,
        "width": layout.label_width + layout.plot_width + 20,
        "height": height,
        "bars": bars,
        "left": left,
        "label_x": layout.label_width - 10 if layout.label_width else 10,
        "label_anchor": "end" if layout.label_width else "start",
        "axis_y": height - BOTTOM + 4,
        "ticks": [{"x": round(left + t * scale, 1), "label": f"{t:g}"} for t in ticks],
        "bar_height": bar_height,
    }


def _nice_ticks(peak: float) -> list[float]:
    """About five round tick values from 0 to peak."""
    raw = peak / 5
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    count = int(peak // step) + 1
    return [round(i * step, 6) for i in range(count)]


def heat_level(live_assets: int, peak: int) -> int:
    """The shade (1-4) of an ok coverage cell: more live assets, darker."""
    if peak <= 0:
        return 1
    return 1 + min(3, int(3 * live_assets / peak))
