"""Spot price models and duration-weighted statistics over a price history.

A spot price is a step function: each observation holds until the next one (the last holds until the end of
the window). Every statistic here weights a price by how long it held, not by how often it was sampled, so a
spike polled fifty times in one hour does not outweigh a price that held for a day.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

Trend = Literal["up", "down", "stable"]

TREND_THRESHOLD = 0.02
"""Relative 1-hour change beyond which a price is trending: above +2% is ``up``, below -2% is ``down``."""

TREND_WINDOW = timedelta(hours=1)
TARGET_UPTIMES = (0.25, 0.50, 0.75, 0.98)
"""Target uptimes for which :func:`compute_statistics` suggests limit-price tiers."""

DEFAULT_MARGIN = 0.05


@dataclass(frozen=True)
class PriceDataPoint:
    """One observed spot price, in dollars per instance-hour, which holds until the next observation."""

    time: datetime
    price: float


@dataclass(frozen=True)
class SpotPrice:
    """The current spot price of one instance type in one region.

    Attributes:
        instance_type: Instance type name (or ``it_…`` id when the name is unknown).
        region: Region name.
        price_per_hour: Dollars per instance-hour.
        price_per_gpu_hour: Dollars per GPU-hour, or ``None`` when the GPU count is unknown.
        availability: Available instances, or ``None`` when the source does not say.
        trend: 1-hour trend (see :data:`TREND_THRESHOLD`).
        last_updated: Time of the observation.
    """

    instance_type: str
    region: str
    price_per_hour: float
    price_per_gpu_hour: float | None
    availability: int | None
    trend: Trend
    last_updated: datetime


@dataclass(frozen=True)
class PriceStatistics:
    """Duration-weighted statistics of a price history.

    Attributes:
        min: Lowest price.
        max: Highest price.
        avg: Time-weighted mean price.
        median: Time-weighted median: the price at or below which the series spent half of the time.
        p95: Time-weighted 95th percentile.
        volatility: Time-weighted standard deviation.
        trend: 1-hour trend at the end of the window.
        tiers: Suggested limit price per target uptime (the lowest limit that would have been met that share
            of the time).
        week_over_week: Relative change of the mean of the last 24 h against the same 24 h one week
            earlier, or ``None`` when the history does not reach back that far.
        hour_of_day: Mean price per UTC hour of day (0-23), for hours that have data.
        weekday: Mean price per weekday (0 = Monday), for days that have data.
        hours: Length of the window in hours.
    """

    min: float
    max: float
    avg: float
    median: float
    p95: float
    volatility: float
    trend: Trend
    tiers: dict[float, float]
    week_over_week: float | None
    hour_of_day: dict[int, float]
    weekday: dict[int, float]
    hours: float
    segments: tuple[tuple[float, float], ...] = field(default=(), repr=False, compare=False)

    def uptime_at(self, limit: float) -> float:
        """Return the share of time (0-1) the price was at or below ``limit``.

        Example:
            >>> from datetime import datetime, timezone
            >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
            >>> pts = [PriceDataPoint(t, 1.0), PriceDataPoint(t + timedelta(hours=3), 2.0)]
            >>> compute_statistics(pts, end=t + timedelta(hours=4)).uptime_at(1.5)
            0.75
        """
        total = sum(duration for _, duration in self.segments)
        if total <= 0:
            return 0.0
        return sum(duration for price, duration in self.segments if price <= limit + 1e-12) / total


@dataclass(frozen=True)
class PriceHistory:
    """A window of observed prices for one instance type in one region, with its statistics."""

    instance_type: str
    region: str
    points: list[PriceDataPoint]
    statistics: PriceStatistics | None
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Recommendation:
    """A suggested limit price and why.

    Attributes:
        price: The suggested limit price, dollars per instance-hour, rounded up to the cent.
        target_uptime: The uptime asked for (0-1).
        achieved_uptime: The share of the window a bid at ``price`` would have been at or above the spot price.
        margin: The relative headroom added over the tier price.
        window_start: Start of the history used.
        window_end: End of the history used.
        rationale: One sentence that says all of the above.
    """

    price: float
    target_uptime: float
    achieved_uptime: float
    margin: float
    window_start: datetime
    window_end: datetime
    rationale: str


def segments(points: list[PriceDataPoint], end: datetime | None = None) -> list[tuple[datetime, datetime, float]]:
    """Turn observations into step-function segments ``(start, stop, price)``.

    Each observation holds until the next; the last one holds until ``end`` (default: its own time, so it gets no
    weight unless ``end`` says otherwise). Observations are sorted by time first.

    Args:
        points: Observations in any order.
        end: End of the window.

    Returns:
        Segments in time order, with zero-length ones dropped.
    """
    ordered = sorted(points, key=lambda p: p.time)
    out = []
    for here, after in zip(ordered, [*ordered[1:], None], strict=True):
        stop = after.time if after is not None else (end if end is not None and end > here.time else here.time)
        if stop > here.time:
            out.append((here.time, stop, here.price))
    return out


def _weighted_quantile(pairs: list[tuple[float, float]], q: float) -> float:
    ordered = sorted(pairs)
    total = sum(w for _, w in ordered)
    running = 0.0
    for price, weight in ordered:
        running += weight
        if running >= q * total - 1e-9:
            return price
    return ordered[-1][0]


def price_at(points: list[PriceDataPoint], when: datetime) -> float | None:
    """Return the price in effect at ``when`` (the last observation at or before it), or ``None``."""
    before = [p for p in points if p.time <= when]
    return max(before, key=lambda p: p.time).price if before else None


def trend_of(points: list[PriceDataPoint], threshold: float = TREND_THRESHOLD) -> Trend:
    """Return the 1-hour trend: the last price against the price in effect one hour before it.

    Example:
        >>> from datetime import datetime, timezone
        >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
        >>> trend_of([PriceDataPoint(t, 10.0), PriceDataPoint(t + timedelta(minutes=90), 10.1)])
        'stable'
        >>> trend_of([PriceDataPoint(t, 10.0), PriceDataPoint(t + timedelta(minutes=90), 10.5)])
        'up'
    """
    if not points:
        return "stable"
    last = max(points, key=lambda p: p.time)
    before = price_at(points, last.time - TREND_WINDOW)
    if before is None:
        before = min(points, key=lambda p: p.time).price
    if before <= 0:
        return "stable"
    change = (last.price - before) / before
    return "up" if change > threshold else "down" if change < -threshold else "stable"


def _window_mean(segs: list[tuple[datetime, datetime, float]], start: datetime, stop: datetime) -> float | None:
    weight = total = 0.0
    for a, b, price in segs:
        lo, hi = max(a, start), min(b, stop)
        if hi > lo:
            seconds = (hi - lo).total_seconds()
            weight += seconds
            total += price * seconds
    return total / weight if weight > 0 else None


def _seasonality(segs: list[tuple[datetime, datetime, float]]) -> tuple[dict[int, float], dict[int, float]]:
    hourly: dict[int, list[float]] = {}
    daily: dict[int, list[float]] = {}
    for a, b, price in segs:
        cursor = a
        while cursor < b:
            boundary = cursor.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
            stop = min(boundary, b)
            seconds = (stop - cursor).total_seconds()
            for bucket, key in ((hourly, cursor.hour), (daily, cursor.weekday())):
                acc = bucket.setdefault(key, [0.0, 0.0])
                acc[0] += price * seconds
                acc[1] += seconds
            cursor = stop
    return ({k: v[0] / v[1] for k, v in sorted(hourly.items())}, {k: v[0] / v[1] for k, v in sorted(daily.items())})


def compute_statistics(points: list[PriceDataPoint], end: datetime | None = None) -> PriceStatistics | None:
    """Compute duration-weighted statistics of ``points`` up to ``end``.

    When every observation has zero duration (a single point and no ``end``), each counts equally.

    Args:
        points: Observations, in any order.
        end: End of the window; the last observation holds until then.

    Returns:
        The statistics, or ``None`` for an empty history.

    Example:
        >>> from datetime import datetime, timezone
        >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
        >>> pts = [PriceDataPoint(t, 10.0)] + [PriceDataPoint(t + timedelta(hours=23, minutes=i), 50.0)
        ...                                    for i in range(50)]
        >>> round(compute_statistics(pts, end=t + timedelta(hours=24)).avg, 2)
        11.67
    """
    if not points:
        return None
    segs = segments(points, end)
    pairs = [(price, (b - a).total_seconds()) for a, b, price in segs]
    if not pairs:
        pairs = [(p.price, 1.0) for p in points]
    total = sum(w for _, w in pairs)
    mean = sum(p * w for p, w in pairs) / total
    variance = sum(w * (p - mean) ** 2 for p, w in pairs) / total
    ordered = sorted(points, key=lambda p: p.time)
    stop = end if end is not None and end > ordered[-1].time else ordered[-1].time
    week_over_week = None
    if ordered[0].time <= stop - timedelta(days=8):
        now = _window_mean(segs, stop - timedelta(days=1), stop)
        then = _window_mean(segs, stop - timedelta(days=8), stop - timedelta(days=7))
        if now is not None and then:
            week_over_week = now / then - 1
    hourly, daily = _seasonality(segs)
    return PriceStatistics(
        min=min(p for p, _ in pairs), max=max(p for p, _ in pairs), avg=mean,
        median=_weighted_quantile(pairs, 0.5), p95=_weighted_quantile(pairs, 0.95), volatility=math.sqrt(variance),
        trend=trend_of(points), tiers={q: _weighted_quantile(pairs, q) for q in TARGET_UPTIMES},
        week_over_week=week_over_week, hour_of_day=hourly, weekday=daily,
        hours=(stop - ordered[0].time).total_seconds() / 3600, segments=tuple(pairs),
    )


def recommend_limit_price(history: PriceHistory, target_uptime: float = 0.75,
                          margin: float = DEFAULT_MARGIN) -> Recommendation | None:
    """Suggest a limit price that would have kept an instance running ``target_uptime`` of the window.

    The price is the time-weighted ``target_uptime`` quantile of the history plus ``margin``, rounded up to the
    cent. The auction is second-price, so a higher limit raises the chance of running, not the price paid.

    Args:
        history: The window to learn from.
        target_uptime: Wanted share of time running, 0-1.
        margin: Relative headroom over the quantile (0.05 = 5%).

    Returns:
        The recommendation, or ``None`` for an empty history.

    Raises:
        ValueError: ``target_uptime`` is outside (0, 1] or ``margin`` is negative.
    """
    if not 0 < target_uptime <= 1:
        raise ValueError(f"target uptime must be in (0, 1], not {target_uptime}")
    if margin < 0:
        raise ValueError(f"margin must not be negative, not {margin}")
    stats = history.statistics
    if stats is None:
        return None
    base = _weighted_quantile(list(stats.segments) or [(stats.avg, 1.0)], target_uptime)
    price = math.ceil(round(base * (1 + margin) * 100, 6)) / 100
    achieved = stats.uptime_at(price)
    rationale = (f"over the {stats.hours:.0f} h from {history.start:%Y-%m-%d %H:%M} to {history.end:%Y-%m-%d %H:%M} "
                 f"UTC, ${base:.2f}/h covered {target_uptime:.0%} of the time; with a {margin:.0%} margin a limit of "
                 f"${price:.2f}/h would have been met {achieved:.1%} of the time")
    return Recommendation(price, target_uptime, achieved, margin, history.start, history.end, rationale)
