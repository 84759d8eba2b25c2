"""Chart geometry for the report pages: plain numbers that templates draw as SVG (no JS, no CDN).

Pure: no Flask, no database. Each function takes report rows and returns the positions of
every mark, the axis ticks and the chart's size; the templates escape every label.
"""

from __future__ import annotations

import math

# Colour-blind-safe (Okabe-Ito) colours, each verdict also with its own marker shape. NOTE: the
# verdicts themselves (and their order) are the domain's VERDICTS; a test keeps these keys equal.
VERDICT_STYLE = {
    "shortens": {"shape": "circle", "label": "shortens the stage"},
    "lengthens": {"shape": "triangle", "label": "lengthens the stage"},
    "no_evidence": {"shape": "square", "label": "no evidence either way"},
    "insufficient_data": {"shape": "none", "label": "not enough data"},
}

ROW_HEIGHT = 22
LABEL_WIDTH = 420
PLOT_WIDTH = 420
TOP = 34
BOTTOM = 34
LOG_TICKS = (0.1, 0.2, 0.5, 1, 2, 5, 10)


def _clamp(value: float, low: float, high: float) -> float:
    """value kept inside [low, high]."""
    return max(low, min(high, value))


def forest_plot(rows: list[dict]) -> dict:
    """Hazard ratios with confidence intervals on a log axis; one row per fitted (asset, stage).

    Rows without a hazard ratio (insufficient data) are not drawn: the page lists them apart.
    An interval reaching past the axis is cut at its edge and flagged (`cut_low`/`cut_high`).
    """
    drawn = [r for r in rows if _finite(r.get("hazard_ratio"))]
    lows = [r["ci_low"] for r in drawn if _finite(r.get("ci_low")) and r["ci_low"] > 0]
    highs = [r["ci_high"] for r in drawn if _finite(r.get("ci_high"))]
    low = _clamp(min(lows + [0.5]), 0.1, 1.0)
    high = _clamp(max(highs + [2.0]), 1.0, 10.0)
    lo_log, hi_log = math.log(low), math.log(high)

    def x(value: float) -> float:
        """The horizontal position of a hazard ratio."""
        t = (math.log(_clamp(value, low, high)) - lo_log) / (hi_log - lo_log)
        return round(LABEL_WIDTH + t * PLOT_WIDTH, 1)

    marks = []
    for i, r in enumerate(drawn):
        y = TOP + i * ROW_HEIGHT + ROW_HEIGHT / 2
        ci_low = r.get("ci_low") if _finite(r.get("ci_low")) and r["ci_low"] > 0 else None
        ci_high = r.get("ci_high") if _finite(r.get("ci_high")) else None
        marks.append(
            {
                **r,
                "y": y,
                "x": x(r["hazard_ratio"]),
                "x_low": x(ci_low) if ci_low is not None else None,
                "x_high": x(ci_high) if ci_high is not None else None,
                "cut_low": ci_low is not None and ci_low < low,
                "cut_high": ci_high is not None and ci_high > high,
                "shape": VERDICT_STYLE.get(r.get("verdict"), VERDICT_STYLE["no_evidence"])["shape"],
                "triangle": _triangle(x(r["hazard_ratio"]), y),
            }
        )
    height = TOP + len(drawn) * ROW_HEIGHT + BOTTOM
    ticks = [{"x": x(t), "label": f"{t:g}"} for t in LOG_TICKS if low <= t <= high]
    return {
        "width": LABEL_WIDTH + PLOT_WIDTH + 20,
        "height": height,
        "marks": marks,
        "ticks": ticks,
        "one": x(1.0),
        "plot_left": LABEL_WIDTH,
        "plot_right": LABEL_WIDTH + PLOT_WIDTH,
        "axis_y": height - BOTTOM,
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
    bar_width: int = 420,
) -> dict:
    """Horizontal bars of `value` per row (rows without a value are listed, not drawn).

    `low`/`high` name an interval drawn as a whisker over the bar (e.g. the quartiles).
    """
    values = [r[value] for r in rows if _finite(r.get(value))]
    values += [r[high] for r in rows if high and _finite(r.get(high))]
    peak = max(values + [1])
    scale = bar_width / peak
    bars = []
    for i, r in enumerate(rows):
        y = TOP + i * ROW_HEIGHT
        v = r.get(value)
        ends = [LABEL_WIDTH + v * scale if _finite(v) else LABEL_WIDTH]
        if high and _finite(r.get(high)):
            ends.append(LABEL_WIDTH + r[high] * scale)
        bars.append(
            {
                "row": r,
                "label": r.get(label),
                "y": y,
                "text_y": y + ROW_HEIGHT * 0.68,
                "drawn": _finite(v),
                "width": round(v * scale, 1) if _finite(v) else 0,
                "value": v,
                # NOTE: the number sits past the whisker, so the line never runs through it.
                "text_x": round(max(ends) + 6, 1),
                "x_low": round(LABEL_WIDTH + r[low] * scale, 1)
                if low and _finite(r.get(low))
                else None,
                "x_high": round(LABEL_WIDTH + r[high] * scale, 1)
                if high and _finite(r.get(high))
                else None,
            }
        )
    ticks = _nice_ticks(peak)
    height = TOP + len(rows) * ROW_HEIGHT + BOTTOM
    return {
        "width": LABEL_WIDTH + bar_width + 80,
        "height": height,
        "bars": bars,
        "left": LABEL_WIDTH,
        "axis_y": height - BOTTOM + 4,
        "ticks": [{"x": round(LABEL_WIDTH + t * scale, 1), "label": f"{t:g}"} for t in ticks],
        "bar_height": ROW_HEIGHT - 6,
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
