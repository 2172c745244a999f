"""A local sqlite store of observed spot prices, so history outlives a single query.

The database is ``prices.sqlite3`` in ``$FLOWC_DATA_DIR`` or, when that is unset, in
``platformdirs.user_data_dir("flowc")``. Every observation a live query returns is recorded; CSV files with the
columns ``time,instance_type,region,price[,availability]`` (ISO-8601 time, UTC when no offset is given; dollars
per instance-hour, with or without a leading ``$``) can be imported.
"""

from __future__ import annotations

import csv
import os
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from flowc.providers.mithril.domain.pricing import PriceDataPoint
from flowc.providers.mithril.times import iso_utc_micros, parse_time

CSV_COLUMNS = ("time", "instance_type", "region", "price", "availability")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS observations (
    instance_type TEXT NOT NULL,
    region TEXT NOT NULL,
    time TEXT NOT NULL,
    price REAL NOT NULL,
    availability INTEGER,
    PRIMARY KEY (instance_type, region, time)
)
"""


class StoreError(Exception):
    """A CSV file that cannot be imported; ``message`` says where and why."""

    def __init__(self, message: str) -> None:
        """Keep the message."""
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Observation:
    """One observed spot price of an instance type in a region."""

    instance_type: str
    region: str
    time: datetime
    price: float
    availability: int | None = None


def default_data_dir() -> Path:
    """Return ``$FLOWC_DATA_DIR``, or the platform's per-user data directory for flowc."""
    override = os.environ.get("FLOWC_DATA_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_data_dir("flowc"))


def read_csv(path: str | Path) -> list[Observation]:
    """Read observations from a CSV file with the documented columns.

    Args:
        path: The file.

    Returns:
        The observations, in file order.

    Raises:
        StoreError: A column is missing or a row does not parse.
    """
    out = []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in CSV_COLUMNS[:4] if c not in (reader.fieldnames or [])]
        if missing:
            raise StoreError(f"{path}: missing column(s) {', '.join(repr(c) for c in missing)}; "
                             f"expected {','.join(CSV_COLUMNS[:4])}[,availability]")
        for line, row in enumerate(reader, start=2):
            try:
                availability = (row.get("availability") or "").strip()
                out.append(Observation(row["instance_type"].strip(), row["region"].strip(), parse_time(row["time"]),
                                       float(row["price"].strip().lstrip("$")),
                                       int(availability) if availability else None))
            except (ValueError, AttributeError) as exc:
                raise StoreError(f"{path}:{line}: cannot read row: {exc}") from exc
    return out


class PriceStore:
    """Observed spot prices in a sqlite database.

    Args:
        path: The database file; default ``default_data_dir() / "prices.sqlite3"``.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        """Open (and create when needed) the database."""
        self.path = Path(path) if path is not None else default_data_dir() / "prices.sqlite3"

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path)
        connection.execute(_SCHEMA)
        return connection

    def record(self, observations: Iterable[Observation]) -> int:
        """Store observations (a repeated one replaces the earlier) and return how many were given."""
        rows = [(o.instance_type, o.region, iso_utc_micros(o.time), float(o.price), o.availability)
                for o in observations]
        if not rows:
            return 0
        with self._connect() as connection:
            connection.executemany("INSERT OR REPLACE INTO observations VALUES (?, ?, ?, ?, ?)", rows)
        connection.close()
        return len(rows)

    def import_csv(self, path: str | Path) -> int:
        """Import a CSV file (see the module docstring) and return the number of rows stored.

        Raises:
            StoreError: The file does not have the documented columns or a row does not parse.
        """
        return self.record(read_csv(path))

    def is_empty(self) -> bool:
        """Return True when nothing was ever recorded (without creating the database)."""
        if not self.path.exists():
            return True
        with self._connect() as connection:
            found = connection.execute("SELECT 1 FROM observations LIMIT 1").fetchone()
        connection.close()
        return found is None

    def latest(self) -> list[Observation]:
        """Return the latest observation of every (instance type, region), sorted by both."""
        if not self.path.exists():
            return []
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT o.instance_type, o.region, o.time, o.price, o.availability FROM observations o "
                "JOIN (SELECT instance_type, region, MAX(time) AS time FROM observations "
                "GROUP BY instance_type, region) m USING (instance_type, region, time) "
                "ORDER BY o.instance_type, o.region").fetchall()
        connection.close()
        return [Observation(t, r, parse_time(at), p, a) for t, r, at, p, a in rows]

    def history(self, instance_type: str, region: str, start: datetime | None = None,
                end: datetime | None = None) -> list[PriceDataPoint]:
        """Return the observations of one pair between ``start`` and ``end``, in time order.

        The last observation before ``start`` is included, moved to ``start``, because it is the price that was
        in effect when the window opened.
        """
        if not self.path.exists():
            return []
        lo = iso_utc_micros(start) if start is not None else ""
        hi = iso_utc_micros(end) if end is not None else "9999"
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT time, price FROM observations WHERE instance_type = ? AND region = ? AND time >= ? "
                "AND time <= ? ORDER BY time", (instance_type, region, lo, hi)).fetchall()
            before = connection.execute(
                "SELECT time, price FROM observations WHERE instance_type = ? AND region = ? AND time < ? "
                "ORDER BY time DESC LIMIT 1", (instance_type, region, lo)).fetchone() if start else None
        connection.close()
        points = [PriceDataPoint(parse_time(at), price) for at, price in rows]
        if before is not None and start is not None and (not points or points[0].time > start):
            points.insert(0, PriceDataPoint(start, before[1]))
        return points
