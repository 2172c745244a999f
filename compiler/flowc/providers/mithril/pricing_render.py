"""Renderers of spot prices and price histories: JSON, CSV, rich tables, a sparkline and a standalone HTML page.

JSON (``format: "flowc.pricing/v1"``) has keys ``format``, ``kind`` (``spot`` or ``history``), ``source``
(``live``, ``local``, ``sample``), ``sample_data`` (true for the bundled sample), then ``prices`` (spot) or
``instance_type``, ``region``, ``window``, ``points``, ``statistics``, ``recommendation`` (history). Times are
ISO-8601 UTC, prices dollars per hour. CSV has a header row and a ``source`` column on every row (spot:
``instance_type,region,price_per_hour,price_per_gpu_hour,availability,trend,last_updated,source``; history:
``time,instance_type,region,price,source``). Keys and rows are sorted so output is stable.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any

from flowc.providers.mithril.domain.pricing import PriceHistory, PriceStatistics, Recommendation, SpotPrice, segments
from flowc.providers.mithril.times import iso_utc

FORMAT = "flowc.pricing/v1"
SAMPLE_LABEL = "sample data: not live prices (set MITHRIL_API_KEY or run 'flowc pricing import FILE.csv')"
_BARS = "▁▂▃▄▅▆▇█"
_ARROWS = {"up": "↑", "down": "↓", "stable": "→"}


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def statistics_dict(stats: PriceStatistics | None) -> dict[str, Any] | None:
    """Return the JSON form of ``stats`` (tier and seasonality keys as strings)."""
    if stats is None:
        return None
    return {
        "min": _r(stats.min), "max": _r(stats.max), "avg": _r(stats.avg), "median": _r(stats.median),
        "p95": _r(stats.p95), "volatility": _r(stats.volatility), "trend": stats.trend, "hours": _r(stats.hours),
        "tiers": {f"{q:.2f}": _r(p) for q, p in stats.tiers.items()},
        "week_over_week": _r(stats.week_over_week),
        "hour_of_day": {f"{h:02d}": _r(p) for h, p in stats.hour_of_day.items()},
        "weekday": {str(d): _r(p) for d, p in stats.weekday.items()},
    }


def _header(kind: str, source: str, sample: bool) -> dict[str, Any]:
    head: dict[str, Any] = {"format": FORMAT, "kind": kind, "source": source, "sample_data": sample}
    if sample:
        head["note"] = SAMPLE_LABEL
    return head


def spot_json(prices: list[SpotPrice], source: str, sample: bool) -> str:
    """Render spot prices as ``flowc.pricing/v1`` JSON."""
    doc = _header("spot", source, sample)
    doc["prices"] = [{"instance_type": p.instance_type, "region": p.region, "price_per_hour": _r(p.price_per_hour),
                      "price_per_gpu_hour": _r(p.price_per_gpu_hour), "availability": p.availability,
                      "trend": p.trend, "last_updated": iso_utc(p.last_updated)} for p in prices]
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def history_json(history: PriceHistory, recommendation: Recommendation | None, source: str, sample: bool) -> str:
    """Render a price history, its statistics and a recommendation as ``flowc.pricing/v1`` JSON."""
    doc = _header("history", source, sample)
    doc.update({
        "instance_type": history.instance_type, "region": history.region,
        "window": {"start": iso_utc(history.start), "end": iso_utc(history.end)},
        "points": [{"time": iso_utc(p.time), "price": _r(p.price)} for p in history.points],
        "statistics": statistics_dict(history.statistics),
        "recommendation": None if recommendation is None else {
            "price": recommendation.price, "target_uptime": recommendation.target_uptime,
            "achieved_uptime": _r(recommendation.achieved_uptime), "margin": recommendation.margin,
            "rationale": recommendation.rationale},
    })
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def spot_csv(prices: list[SpotPrice], source: str) -> str:
    """Render spot prices as CSV with a header row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["instance_type", "region", "price_per_hour", "price_per_gpu_hour", "availability", "trend",
                     "last_updated", "source"])
    for p in prices:
        writer.writerow([p.instance_type, p.region, f"{p.price_per_hour:.4f}",
                         "" if p.price_per_gpu_hour is None else f"{p.price_per_gpu_hour:.4f}",
                         "" if p.availability is None else p.availability, p.trend, iso_utc(p.last_updated), source])
    return out.getvalue()


def history_csv(history: PriceHistory, source: str) -> str:
    """Render a price history's points as CSV with a header row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["time", "instance_type", "region", "price", "source"])
    for p in history.points:
        writer.writerow([iso_utc(p.time), history.instance_type, history.region, f"{p.price:.4f}", source])
    return out.getvalue()


def resample(history: PriceHistory, buckets: int = 60) -> list[float]:
    """Return the time-weighted mean price of ``buckets`` equal slices of the window (empty slices repeat)."""
    segs = segments(history.points, history.end)
    if not segs:
        return [p.price for p in history.points]
    start, end = segs[0][0], segs[-1][1]
    width = (end - start) / buckets
    out: list[float] = []
    for i in range(buckets):
        lo, hi = start + width * i, start + width * (i + 1)
        weight = total = 0.0
        for a, b, price in segs:
            seconds = (min(b, hi) - max(a, lo)).total_seconds()
            if seconds > 0:
                weight += seconds
                total += price * seconds
        out.append(total / weight if weight else (out[-1] if out else segs[0][2]))
    return out


def sparkline(values: list[float]) -> str:
    """Return a one-line bar chart of ``values``.

    Example:
        >>> sparkline([1, 2, 3, 4, 5, 6, 7, 8])
        '▁▂▃▄▅▆▇█'
    """
    if not values:
        return ""
    lo, hi = min(values), max(values)
    span = hi - lo or 1.0
    return "".join(_BARS[min(len(_BARS) - 1, int((v - lo) / span * len(_BARS)))] for v in values)


def price_style(price: float, stats: PriceStatistics | None) -> str:
    """Return the rich style of ``price`` against its history: green below the median, red above p95."""
    if stats is None:
        return ""
    return "green" if price < stats.median else "red" if price > stats.p95 else "yellow"


def spot_table(prices: list[SpotPrice], stats: dict[tuple[str, str], PriceStatistics | None], sample: bool,
               show_stats: bool = False) -> Any:
    """Build a rich table of spot prices with trend arrows, colours against history and availability."""
    from rich.table import Table

    title = "Spot prices (SAMPLE DATA, not live)" if sample else "Spot prices"
    table = Table(title=title, caption=SAMPLE_LABEL if sample else None)
    for name, justify in (("Instance", "left"), ("Region", "left"), ("$/hr", "right"), ("$/GPU-hr", "right"),
                          ("Trend", "center"), ("Avail", "right"), ("Updated (UTC)", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    if show_stats:
        for name in ("Median", "P95", "Vol"):
            table.add_column(name, justify="right")
    for p in prices:
        s = stats.get((p.instance_type, p.region))
        style = price_style(p.price_per_hour, s)
        row = [p.instance_type, p.region, f"[{style}]{p.price_per_hour:.2f}[/]" if style else f"{p.price_per_hour:.2f}",
               "-" if p.price_per_gpu_hour is None else f"{p.price_per_gpu_hour:.2f}", _ARROWS[p.trend],
               "-" if p.availability is None else str(p.availability), p.last_updated.strftime("%Y-%m-%d %H:%M")]
        if show_stats:
            row += ["-", "-", "-"] if s is None else [f"{s.median:.2f}", f"{s.p95:.2f}", f"{s.volatility:.2f}"]
        table.add_row(*row)
    return table


def history_lines(history: PriceHistory, recommendation: Recommendation | None, sample: bool,
                  show_stats: bool = False) -> list[str]:
    """Return the plain-text lines of a history summary (statistics, sparkline, tiers, recommendation)."""
    lines = []
    if sample:
        lines.append(f"[{SAMPLE_LABEL}]")
    lines.append(f"{history.instance_type} in {history.region}: {len(history.points)} observations from "
                 f"{history.start:%Y-%m-%d %H:%M} to {history.end:%Y-%m-%d %H:%M} UTC")
    s = history.statistics
    if s is None:
        lines.append("no observations in this window")
        return lines
    lines.append(sparkline(resample(history)))
    lines.append(f"min {s.min:.2f}  median {s.median:.2f}  avg {s.avg:.2f}  p95 {s.p95:.2f}  max {s.max:.2f}  "
                 f"volatility {s.volatility:.2f}  trend {_ARROWS[s.trend]} {s.trend}  ($/instance-hr, time-weighted)")
    lines.append("limit for uptime: " + "  ".join(f"{q:.0%} ≤ {p:.2f}" for q, p in s.tiers.items()))
    if s.week_over_week is not None:
        lines.append(f"week over week: {s.week_over_week:+.1%}")
    if show_stats:
        lines.append("by hour (UTC): " + sparkline(list(s.hour_of_day.values())) + "  cheapest hour "
                     f"{min(s.hour_of_day, key=s.hour_of_day.__getitem__):02d}:00")
        days = "Mon Tue Wed Thu Fri Sat Sun".split()
        lines.append("by weekday: " + "  ".join(f"{days[d]} {p:.2f}" for d, p in s.weekday.items()))
    if recommendation is not None:
        lines.append(f"suggested limit: ${recommendation.price:.2f}/hr ({recommendation.rationale})")
    return lines


_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>body{font-family:sans-serif;margin:2em;color:#222}
.sample{background:#fff3cd;padding:.5em;border:1px solid #e0c068}
table{border-collapse:collapse}td,th{padding:.2em .8em;border-bottom:1px solid #ddd;text-align:right}</style>
</head><body>
<h1>{{ title }}</h1>
{% if sample %}<p class="sample">{{ sample_label }}</p>{% endif %}
<p>{{ window }}</p>
<svg xmlns="http://www.w3.org/2000/svg" width="{{ w }}" height="{{ h }}" viewBox="0 0 {{ w }} {{ h }}" role="img">
<rect x="0" y="0" width="{{ w }}" height="{{ h }}" fill="#fafafa" stroke="#ccc"/>
{% for y, label in grid %}<line x1="50" x2="{{ w - 10 }}" y1="{{ y }}" y2="{{ y }}" stroke="#e5e5e5"/>
<text x="45" y="{{ y + 4 }}" font-size="11" text-anchor="end">{{ label }}</text>{% endfor %}
<polyline fill="none" stroke="#1f6feb" stroke-width="1.5" points="{{ points }}"/>
</svg>
{% if stats %}<table><tr>{% for k, v in stats %}<th>{{ k }}</th>{% endfor %}</tr>
<tr>{% for k, v in stats %}<td>{{ v }}</td>{% endfor %}</tr></table>{% endif %}
{% if recommendation %}<p>Suggested limit: {{ recommendation }}</p>{% endif %}
</body></html>
"""


def history_html(history: PriceHistory, recommendation: Recommendation | None, sample: bool) -> str:
    """Return a self-contained HTML page with an inline SVG step chart of the history (no scripts or fonts)."""
    import jinja2

    w, h, left, top, bottom = 800, 300, 50.0, 10.0, 20.0
    segs = segments(history.points, history.end)
    stats = history.statistics
    lo = stats.min if stats else 0.0
    hi = stats.max if stats else 1.0
    span = (hi - lo) or 1.0
    t0, t1 = history.start.timestamp(), history.end.timestamp()
    width = (t1 - t0) or 1.0

    def xy(t: datetime, price: float) -> str:
        x = left + (max(t.timestamp(), t0) - t0) / width * (w - left - 10)
        y = top + (hi - price) / span * (h - top - bottom)
        return f"{x:.1f},{y:.1f}"

    coords = []
    for a, b, price in segs:
        coords += [xy(a, price), xy(b, price)]
    grid = [(top + i / 4 * (h - top - bottom), f"{hi - i / 4 * span:.2f}") for i in range(5)]
    table = [] if stats is None else [(k, f"{v:.2f}") for k, v in (
        ("min", stats.min), ("median", stats.median), ("avg", stats.avg), ("p95", stats.p95), ("max", stats.max),
        ("volatility", stats.volatility))]
    advice = None if recommendation is None else f"${recommendation.price:.2f}/hr: {recommendation.rationale}"
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(_HTML).render(
        title=f"Spot price history: {history.instance_type} in {history.region}", sample=sample,
        sample_label=SAMPLE_LABEL, window=f"{iso_utc(history.start)} to {iso_utc(history.end)}, $/instance-hour",
        w=w, h=h, grid=grid, points=" ".join(coords), stats=table,
        recommendation=advice)
