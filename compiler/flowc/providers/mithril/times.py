"""UTC times as the Mithril provider reads and writes them: ISO-8601 with a ``Z``, naive meaning UTC.

One place for the three spellings in use: :func:`iso_utc` (whole seconds, for the API's query parameters and for
rendered output), :func:`iso_utc_micros` (microseconds, the price store's sort key) and :func:`parse_time`.
"""

from __future__ import annotations

from datetime import UTC, datetime


def as_utc(value: datetime) -> datetime:
    """Return ``value`` in UTC; a naive ``value`` is taken to be UTC already.

    Example:
        >>> from datetime import timedelta, timezone
        >>> as_utc(datetime(2026, 1, 5, 11, 0, tzinfo=timezone(timedelta(hours=1)))).isoformat()
        '2026-01-05T10:00:00+00:00'
        >>> as_utc(datetime(2026, 1, 5, 10, 0)).isoformat()
        '2026-01-05T10:00:00+00:00'
    """
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso_utc(value: datetime) -> str:
    """Format ``value`` as ``YYYY-MM-DDTHH:MM:SSZ`` in UTC; sub-second digits are dropped, not rounded.

    Example:
        >>> iso_utc(datetime(2026, 1, 5, 10, 0, 7, 900000))
        '2026-01-05T10:00:07Z'
    """
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_utc_micros(value: datetime) -> str:
    """Format ``value`` as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC.

    Every value has the same width and field order, so these strings sort as the times do: the price store keys
    and range-queries its rows by them. Changing this format changes what existing databases match.

    Example:
        >>> iso_utc_micros(datetime(2026, 1, 5, 10, 0, 7))
        '2026-01-05T10:00:07.000000Z'
    """
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    """Parse an ISO-8601 time (``Z`` or an offset; none means UTC) into an aware UTC datetime.

    Raises:
        ValueError: ``text`` is not an ISO-8601 time.

    Example:
        >>> parse_time("2026-01-05T10:00:00Z").isoformat()
        '2026-01-05T10:00:00+00:00'
        >>> parse_time(iso_utc_micros(datetime(2026, 1, 5, 10, 0, 7, 5))) == datetime(2026, 1, 5, 10, 0, 7, 5, UTC)
        True
    """
    return as_utc(datetime.fromisoformat(text.strip().replace("Z", "+00:00")))
