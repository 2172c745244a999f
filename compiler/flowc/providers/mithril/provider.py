"""``MithrilProvider``: a thin facade over the pricing source, the local store and the statistics.

Prices are per instance-hour as the API quotes them; per GPU-hour divides by the GPU count from flowc's catalog
(``flowc.model.catalog.lookup``), and stays ``None`` for names the catalog does not know (such as raw ``it_…`` ids).
"""

from __future__ import annotations

from urllib.parse import urlencode

from flowc.providers.mithril.domain.pricing import (
    DEFAULT_MARGIN,
    PriceHistory,
    Recommendation,
    SpotPrice,
    compute_statistics,
    recommend_limit_price,
    trend_of,
)
from flowc.providers.mithril.domain.sources import PriceSource, choose_source
from flowc.providers.mithril.domain.store import PriceStore

DASHBOARD_URL = "https://app.mithril.ai/instances/spot"
"""The web console's spot price graphs (reference section 4). The design's ``dashboard.mithril.ai/pricing``
pattern is not a documented page, so flowc links the console; its filters ride along as query parameters."""

TREND_HOURS = 168.0
"""History fetched for trends; the same window the CLI colours prices against, so one query serves both."""


def gpu_count(instance_type: str) -> int | None:
    """Return the GPUs per instance of ``instance_type`` from flowc's catalog, or ``None`` when unknown.

    Example:
        >>> gpu_count("h100-80gb.sxm.8x"), gpu_count("it_5ECSoHQjLBzrp5YM")
        (8, None)
    """
    from flowc.model.catalog import lookup

    found = lookup(instance_type)
    return found.gpu_count if found is not None and found.gpu_count > 0 else None


def canonical_instance_type(name: str) -> str:
    """Return the Mithril display name of a catalog spelling (``8xh100``), or ``name`` unchanged.

    Example:
        >>> canonical_instance_type("8xh100"), canonical_instance_type("it_5ECSoHQjLBzrp5YM")
        ('h100-80gb.sxm.8x', 'it_5ECSoHQjLBzrp5YM')
    """
    from flowc.model.catalog import lookup

    found = lookup(name)
    return found.name if found is not None and found.known else name


class MithrilProvider:
    """Spot prices, price history and limit-price advice from one pricing source.

    Args:
        source: ``live``, ``local`` or ``sample``; ``None`` picks one (see ``choose_source``).
        store: The local price store (default: the per-user one).
    """

    def __init__(self, source: str | None = None, store: PriceStore | None = None) -> None:
        """Choose the source."""
        self.store = store if store is not None else PriceStore()
        self.source: PriceSource = choose_source(source, self.store)

    @property
    def is_sample(self) -> bool:
        """True when the prices are the bundled sample data, not observations."""
        return self.source.is_sample

    def get_spot_prices(self, instance_types: list[str] | None = None,
                        regions: list[str] | None = None) -> list[SpotPrice]:
        """Return the current spot price of every matching (instance type, region), sorted by both.

        The trend compares the current price with the price one hour earlier (see ``pricing.trend_of``).
        """
        wanted = {canonical_instance_type(name) for name in instance_types or ()}
        out = []
        for obs in self.source.current():
            if wanted and canonical_instance_type(obs.instance_type) not in wanted:
                continue
            if regions and obs.region not in regions:
                continue
            points, _, _ = self.source.history(obs.instance_type, obs.region, TREND_HOURS)
            gpus = gpu_count(obs.instance_type) or self._api_gpu_count(obs.instance_type)
            out.append(SpotPrice(obs.instance_type, obs.region, obs.price, obs.price / gpus if gpus else None,
                                 obs.availability, trend_of(points) if points else "stable", obs.time))
        return sorted(out, key=lambda p: (p.instance_type, p.region))

    def _api_gpu_count(self, instance_type: str) -> int | None:
        lookup = getattr(self.source, "gpu_count", None)
        return lookup(instance_type) if lookup is not None else None

    def get_price_history(self, instance_type: str, region: str, hours: float = 24.0) -> PriceHistory:
        """Return the observations of the last ``hours`` with their duration-weighted statistics."""
        instance_type = canonical_instance_type(instance_type)
        points, start, end = self.source.history(instance_type, region, hours)
        return PriceHistory(instance_type, region, points, compute_statistics(points, end), start, end)

    @staticmethod
    def get_price_dashboard_url(instance_type: str | None = None, region: str | None = None) -> str:
        """Return the web console's spot price page, with the filters as query parameters.

        Example:
            >>> MithrilProvider.get_price_dashboard_url("8xh100", "us-central2-a")
            'https://app.mithril.ai/instances/spot?instance_type=8xh100&region=us-central2-a'
        """
        query = urlencode([(k, v) for k, v in (("instance_type", instance_type), ("region", region)) if v])
        return f"{DASHBOARD_URL}?{query}" if query else DASHBOARD_URL

    def recommend_limit_price(self, instance_type: str, region: str, target_uptime: float = 0.75,
                              hours: float = 168.0, margin: float = DEFAULT_MARGIN) -> Recommendation | None:
        """Suggest a limit price from the last ``hours`` of history (see ``pricing.recommend_limit_price``)."""
        return recommend_limit_price(self.get_price_history(instance_type, region, hours), target_uptime, margin)
