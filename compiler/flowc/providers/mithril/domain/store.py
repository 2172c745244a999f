"""A local sqlite store of observed spot prices, so history outlives a single query.

The database is ``prices.sqlite3`` in ``$FLOWC_DATA_DIR`` or, when that is unset, in
``platformdirs.user_data_dir("flowc")``. Every observation a live query returns is recorded; CSV files with the
columns ``time,instance_type,region,price[,availability]`` (ISO-8601 time, UTC when no offset is given; dollars
per instance-hour, with or without a leading ``$``) can be imported.

The database is private to its user: it is created ``0600`` (sqlite's journal files take the same mode) in a
directory created ``0700``, and every open tightens an existing database file to ``0600`` and the default data
directory to ``0700``. A directory named by ``$FLOWC_DATA_DIR`` that already exists keeps its mode, since the user
chose it and it may be shared. A database that cannot be opened or read is a :class:`StoreError`.

The store also keeps the API's recent answers (:meth:`PriceStore.keep_answer`, :meth:`PriceStore.cached_answer`),
so the live source's 15-minute cache holds across runs, not only within one process.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sqlite3
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from flowc.diagnostics import UserError
from flowc.providers.mithril.domain.pricing import PriceDataPoint
from flowc.providers.mithril.times import iso_utc_micros, parse_time

#: Kept answers older than this are deleted when a new one is kept.
_ANSWER_RETENTION_S = 86_400.0
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
#: API answers kept for the next run (:meth:`PriceStore.cached_answer`): the cache that outlives a process.
_ANSWERS_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    time REAL NOT NULL,
    body TEXT NOT NULL
)
"""


class StoreError(UserError):
    """A CSV file that cannot be imported, or a database that cannot be used; ``message`` says where and why.

    A :class:`~flowc.diagnostics.UserError`, so any command that reads the store exits 1 on it, not 3.
    """

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


def _tighten(path: Path, mode: int) -> None:
    """Clear the group and other bits of ``path`` beyond ``mode``, when it is ours and they are set.

    A path that is a symlink, or belongs to someone else, is left alone: changing it is not ours to do. The mode
    is read and changed through one descriptor opened without following links, so a swapped path cannot redirect
    the change.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:  # a symlink (ELOOP), or not readable by us: not ours to change
        return
    try:
        info = os.fstat(fd)
        if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) & ~mode:
            os.fchmod(fd, stat.S_IMODE(info.st_mode) & mode)
    finally:
        os.close(fd)


def read_csv(path: str | Path) -> list[Observation]:
    """Read observations from a CSV file with the documented columns.

    Args:
        path: The file.

    Returns:
        The observations, in file order.

    Raises:
        StoreError: The file is not UTF-8 CSV, a column is missing, or a row does not parse (a price must be a
            finite, non-negative number, an availability a count below 2**53).
    """
    out = []
    line = 1
    with open(path, newline="", encoding="utf-8") as handle:
        try:
            reader = csv.DictReader(handle)
            missing = [c for c in CSV_COLUMNS[:4] if c not in (reader.fieldnames or [])]
            if missing:
                raise StoreError(f"{path}: missing column(s) {', '.join(repr(c) for c in missing)}; "
                                 f"expected {','.join(CSV_COLUMNS[:4])}[,availability]")
            for line, row in enumerate(reader, start=2):
                try:
                    out.append(_row(row))
                except (ValueError, AttributeError, OverflowError) as exc:  # OverflowError: a time UTC cannot hold
                    raise StoreError(f"{path}:{line}: cannot read row: {exc}") from exc
        except (UnicodeDecodeError, csv.Error) as exc:
            raise StoreError(f"{path}:{line + 1}: not a utf-8 csv file: {exc}") from None
    return out


def _row(row: dict[str, str]) -> Observation:
    """Turn one CSV row into an observation, checking the values sqlite and the statistics will need."""
    price = float(row["price"].strip().lstrip("$"))
    if not math.isfinite(price) or price < 0:
        raise ValueError(f"price {row['price'].strip()[:40]!r} is not a finite, non-negative number")
    text = (row.get("availability") or "").strip()
    availability = int(text) if text else None
    if availability is not None and not 0 <= availability < 2**53:
        raise ValueError(f"availability {text[:40]!r} is out of range")
    names = row["instance_type"].strip(), row["region"].strip()
    for name in names:
        if not 0 < len(name) <= 200 or not name.isprintable():
            raise ValueError(f"{name[:40]!r} is not a name (1 to 200 printable characters)")
    return Observation(*names, parse_time(row["time"]), price, availability)


class PriceStore:
    """Observed spot prices in a sqlite database.

    Args:
        path: The database file; default ``default_data_dir() / "prices.sqlite3"``.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        """Open (and create when needed) the database."""
        self.path = Path(path) if path is not None else default_data_dir() / "prices.sqlite3"

    def _connect(self) -> sqlite3.Connection:
        try:
            self._secure()
            connection = sqlite3.connect(self.path)
            connection.execute(_SCHEMA)
            connection.execute(_ANSWERS_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the price database {self.path}: {exc}") from None
        return connection

    @contextmanager
    def _session(self) -> Iterator[sqlite3.Connection]:
        """Open the database for one transaction, turning sqlite's errors into :class:`StoreError`."""
        connection = self._connect()
        try:
            with connection:
                yield connection
        except sqlite3.Error as exc:
            raise StoreError(f"cannot use the price database {self.path}: {exc}") from None
        finally:
            connection.close()

    def _secure(self) -> None:
        """Create the directory ``0700`` and the file ``0600``, and tighten them when they already exist.

        The file is created empty (sqlite accepts an empty file as a new database) with ``O_EXCL``, so its mode is
        never the umask's; sqlite creates its journal files with the database file's mode.
        """
        directory = self.path.parent
        try:
            directory.mkdir(parents=True, mode=0o700)
        except FileExistsError:
            if not os.environ.get("FLOWC_DATA_DIR") and directory == default_data_dir():
                _tighten(directory, 0o700)
        else:
            directory.chmod(0o700)  # mkdir's mode is filtered by the umask
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            _tighten(self.path, 0o600)
        else:
            os.close(fd)
        for suffix in ("-journal", "-wal", "-shm"):  # left behind by a crash, maybe from before this rule
            sidecar = self.path.with_name(self.path.name + suffix)
            if sidecar.exists():
                _tighten(sidecar, 0o600)

    def record(self, observations: Iterable[Observation]) -> int:
        """Store observations (a repeated one replaces the earlier) and return how many were given."""
        rows = [(o.instance_type, o.region, iso_utc_micros(o.time), float(o.price), o.availability)
                for o in observations]
        if not rows:
            return 0
        with self._session() as connection:
            connection.executemany("INSERT OR REPLACE INTO observations VALUES (?, ?, ?, ?, ?)", rows)
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
        with self._session() as connection:
            found = connection.execute("SELECT 1 FROM observations LIMIT 1").fetchone()
        return found is None

    def latest(self) -> list[Observation]:
        """Return the latest observation of every (instance type, region), sorted by both."""
        if not self.path.exists():
            return []
        with self._session() as connection:
            rows = connection.execute(
                "SELECT o.instance_type, o.region, o.time, o.price, o.availability FROM observations o "
                "JOIN (SELECT instance_type, region, MAX(time) AS time FROM observations "
                "GROUP BY instance_type, region) m USING (instance_type, region, time) "
                "ORDER BY o.instance_type, o.region").fetchall()
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
        with self._session() as connection:
            rows = connection.execute(
                "SELECT time, price FROM observations WHERE instance_type = ? AND region = ? AND time >= ? "
                "AND time <= ? ORDER BY time", (instance_type, region, lo, hi)).fetchall()
            before = connection.execute(
                "SELECT time, price FROM observations WHERE instance_type = ? AND region = ? AND time < ? "
                "ORDER BY time DESC LIMIT 1", (instance_type, region, lo)).fetchone() if start else None
        points = [PriceDataPoint(parse_time(at), price) for at, price in rows]
        if before is not None and start is not None and (not points or points[0].time > start):
            points.insert(0, PriceDataPoint(start, before[1]))
        return points

    def keep_answer(self, key: str, body: object, now: float) -> None:
        """Keep an API answer (JSON-serializable) under ``key``, fetched at ``now`` (seconds since the epoch)."""
        text = json.dumps(body, separators=(",", ":"), sort_keys=True)
        with self._session() as connection:
            connection.execute("INSERT OR REPLACE INTO answers VALUES (?, ?, ?)", (key, now, text))
            connection.execute("DELETE FROM answers WHERE time < ?", (now - _ANSWER_RETENTION_S,))

    def cached_answer(self, key: str, max_age_s: float, now: float) -> tuple[float, object] | None:
        """``(fetched at, answer)`` kept under ``key`` if at most ``max_age_s`` old at ``now``, else ``None``."""
        if not self.path.exists():
            return None
        with self._session() as connection:
            row = connection.execute("SELECT time, body FROM answers WHERE key = ?", (key,)).fetchone()
        if row is None or not 0 <= now - row[0] <= max_age_s:
            return None
        try:
            return row[0], json.loads(row[1])
        except ValueError:
            return None
