"""Where spot prices come from: the live API, the local store, or the bundled sample data.

Each source answers two questions: the current observation of every (instance type, region), and the
observations of one pair over a window. ``choose_source`` picks one: live when an API key is set, else the local
store when it holds anything, else the sample data (which every output labels as such).
"""

from __future__ import annotations

import math
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from flowc.providers.mithril.domain.pricing import PriceDataPoint
from flowc.providers.mithril.domain.store import Observation, PriceStore, read_csv

SAMPLE_CSV = Path(__file__).resolve().parent.parent / "data" / "sample_prices.csv"
LIVE_TTL_S = 900.0


class PriceSource(Protocol):
    """The strategy a :class:`~flowc.providers.mithril.provider.MithrilProvider` uses to get prices."""

    name: str
    is_sample: bool

    def current(self) -> list[Observation]:
        """Return the latest observation of every (instance type, region)."""
        ...

    def history(self, instance_type: str, region: str, hours: float) -> tuple[list[PriceDataPoint], datetime,
                                                                              datetime]:
        """Return the points of the last ``hours`` and the window's (start, end)."""
        ...


def _filtered(points: list[PriceDataPoint], start: datetime, end: datetime) -> list[PriceDataPoint]:
    """Keep the points in [start, end], with the price in effect at ``start`` moved to ``start``."""
    ordered = sorted(points, key=lambda p: p.time)
    inside = [p for p in ordered if start <= p.time <= end]
    before = [p for p in ordered if p.time < start]
    if before and (not inside or inside[0].time > start):
        inside.insert(0, PriceDataPoint(start, before[-1].price))
    return inside


class LocalSource:
    """Prices recorded in the local store; a window ends at the pair's latest observation.

    Args:
        store: The store to read.
    """

    name = "local"
    is_sample = False

    def __init__(self, store: PriceStore) -> None:
        """Keep the store."""
        self.store = store

    def current(self) -> list[Observation]:
        """Return the latest stored observation of every pair."""
        return self.store.latest()

    def history(self, instance_type: str, region: str, hours: float) -> tuple[list[PriceDataPoint], datetime,
                                                                              datetime]:
        """Return the stored points of the ``hours`` before the pair's latest observation."""
        latest = [o.time for o in self.store.latest() if (o.instance_type, o.region) == (instance_type, region)]
        end = latest[0] if latest else datetime.now(UTC)
        start = end - timedelta(hours=hours)
        return self.store.history(instance_type, region, start, end), start, end


class SampleSource:
    """The bundled sample dataset (about eight days of irregular observations), for trying flowc without a key.

    Args:
        path: The CSV file (default: the bundled ``data/sample_prices.csv``).
    """

    name = "sample"
    is_sample = True

    def __init__(self, path: Path = SAMPLE_CSV) -> None:
        """Read the dataset."""
        self.observations = read_csv(path)

    def current(self) -> list[Observation]:
        """Return the last observation of every pair in the dataset."""
        latest: dict[tuple[str, str], Observation] = {}
        for obs in self.observations:
            key = (obs.instance_type, obs.region)
            if key not in latest or obs.time >= latest[key].time:
                latest[key] = obs
        return [latest[key] for key in sorted(latest)]

    def history(self, instance_type: str, region: str, hours: float) -> tuple[list[PriceDataPoint], datetime,
                                                                              datetime]:
        """Return the dataset's points of the ``hours`` before the pair's last observation."""
        points = [PriceDataPoint(o.time, o.price) for o in self.observations
                  if (o.instance_type, o.region) == (instance_type, region)]
        end = max((p.time for p in points), default=datetime.now(UTC))
        start = end - timedelta(hours=hours)
        return _filtered(points, start, end), start, end


class LiveSource:
    """The Mithril API, cached for 15 minutes across runs; every observation it returns is recorded in the store.

    The API names instance types by ``it_…`` fid; this source reports the display names of
    ``/v2/instance-types`` (falling back to the fid) and maps them back to fids for history queries. Only this
    class touches the API package, so aligning with its models is a local change.

    Args:
        store: Where observations are recorded.
        client: An ``ApiClient``; built from the environment when omitted.
    """

    name = "live"
    is_sample = False

    def __init__(self, store: PriceStore, client: Any = None) -> None:
        """Build the client and the cache (imports the API package, so only when live prices are wanted)."""
        from flowc.providers.mithril.api.client import ApiClient
        from flowc.providers.mithril.domain.answer_cache import CachedAnswers
        from flowc.providers.mithril.domain.cache import TtlCache

        self.store = store
        self.client = CachedAnswers(client if client is not None else ApiClient(), store, LIVE_TTL_S)
        self.cache: Any = TtlCache(ttl_s=LIVE_TTL_S)

    def _types(self) -> dict[str, Any]:
        """Return ``/v2/instance-types`` by fid; empty when the API refuses that call (names then stay fids).

        An unreachable or too slow API (``NetworkError``, ``CircuitOpen``) is not papered over: the next call would
        wait out its deadline again, so the command stops here.
        """
        from flowc.providers.mithril.api import endpoints
        from flowc.providers.mithril.api.errors import CircuitOpen, MithrilApiError, NetworkError

        def load() -> dict[str, Any]:
            try:
                return {t.fid: t for t in endpoints.instance_types(self.client)}
            except (NetworkError, CircuitOpen):
                raise
            except MithrilApiError:
                return {}

        return self.cache.get_or_load(("instance_types",), load)

    def gpu_count(self, instance_type: str) -> int | None:
        """Return the API's GPU count of a display name or fid, or ``None``."""
        for fid, model in self._types().items():
            if instance_type in (fid, model.name) and model.num_gpus:
                return int(model.num_gpus)
        return None

    def _availability(self) -> list[tuple[str, Observation]]:
        from flowc.providers.mithril.api import endpoints

        def load() -> list[tuple[str, Observation]]:
            types = self._types()
            answer = endpoints.spot_availability(self.client)
            now = datetime.fromtimestamp(self.client.fetched_at, UTC)  # a kept answer keeps its own time
            rows = [(m.instance_type, Observation(types[m.instance_type].name if m.instance_type in types
                                                  else m.instance_type, m.region, now,
                                                  float(m.last_instance_price), m.capacity))
                    for m in answer]
            self.store.record(obs for _, obs in rows)
            return rows

        return self.cache.get_or_load(("availability",), load)

    def current(self) -> list[Observation]:
        """Return the live availability, recording it in the store."""
        return sorted((obs for _, obs in self._availability()), key=lambda o: (o.instance_type, o.region))

    def _fid(self, instance_type: str, region: str) -> str:
        for fid, obs in self._availability():
            if (obs.instance_type, obs.region) == (instance_type, region):
                return fid
        return next((fid for fid, model in self._types().items() if model.name == instance_type), instance_type)

    def history(self, instance_type: str, region: str, hours: float) -> tuple[list[PriceDataPoint], datetime,
                                                                              datetime]:
        """Return the API's price history of the last ``hours``, recording it in the store."""
        from flowc.providers.mithril.api import endpoints

        end = datetime.now(UTC)
        start = end - timedelta(hours=hours)

        def load() -> list[PriceDataPoint]:
            series = endpoints.price_history(self.client, self._fid(instance_type, region), region,
                                             max(1, math.ceil(hours)), now=end)
            points = [PriceDataPoint(p.time, float(p.price)) for p in series]
            self.store.record(Observation(instance_type, region, p.time, p.price) for p in points)
            return points

        points = self.cache.get_or_load(("history", instance_type, region, hours), load)
        return _filtered(points, start, end), start, end


def has_api_key() -> bool:
    """Return True when ``MITHRIL_API_KEY`` is set (the key itself is never read here beyond that)."""
    return bool(os.environ.get("MITHRIL_API_KEY"))


def choose_source(kind: str | None, store: PriceStore) -> PriceSource:
    """Return the source named ``kind`` (``live``, ``local``, ``sample``), or pick one when ``kind`` is None.

    Without a name: live when ``MITHRIL_API_KEY`` is set, else local when the store holds observations, else
    the sample data.
    """
    if kind is None:
        kind = "live" if has_api_key() else "local" if not store.is_empty() else "sample"
    if kind == "live":
        return LiveSource(store)
    if kind == "local":
        return LocalSource(store)
    if kind == "sample":
        return SampleSource()
    raise ValueError(f"unknown price source '{kind}'")
