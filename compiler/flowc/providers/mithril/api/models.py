"""Pydantic models of the Mithril responses flowc reads, with the API's own field names.

Money arrives in two formats: dollar strings such as ``"$11.20"`` (availability, price history) and integer cents
(``*_price_cents`` from ``/v2/pricing/current``). Both are normalised here to float dollars per instance-hour, so
no caller parses money. Unknown fields are ignored, so additive API changes do not break flowc.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from flowc.providers.mithril.times import as_utc


def parse_dollars(value: Any) -> float | None:
    """Turn a dollar amount as the API writes it into a float.

    Args:
        value: ``"$11.20"``, ``"11.20"``, ``"$1,024.00"``, a number, or ``None``/``""``.

    Returns:
        The amount in dollars, or ``None`` for ``None`` and empty strings.

    Raises:
        ValueError: The value is not a dollar amount.

    Example:
        >>> parse_dollars("$11.20"), parse_dollars("$1,024.00"), parse_dollars(3), parse_dollars(None)
        (11.2, 1024.0, 3.0, None)
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a dollar amount: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip().replace(",", "").removeprefix("$").strip()
        if not text:
            return None
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"not a dollar amount: {value!r}") from None
    raise ValueError(f"not a dollar amount: {value!r}")


def cents_to_dollars(cents: int | None) -> float | None:
    """Convert integer cents to float dollars, keeping ``None``.

    Example:
        >>> cents_to_dollars(1120), cents_to_dollars(None)
        (11.2, None)
    """
    return None if cents is None else cents / 100


Dollars = Annotated[float, BeforeValidator(parse_dollars)]
"""A price given as a dollar string (``"$11.20"``) or number, held as float dollars."""

OptionalDollars = Annotated[float | None, BeforeValidator(parse_dollars)]
"""Like :data:`Dollars`, but ``null`` and ``""`` become ``None``."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class AuctionModel(_Model):
    """One row of ``GET /v2/spot/availability``: an instance type's spot market in one region.

    Prices are per **instance**-hour in float dollars (the API sends ``"$11.20"``). ``capacity`` counts
    instances, not GPUs. Spec fields are required; the optional ones are those older servers sent.

    Example:
        >>> row = AuctionModel.model_validate({"fid": "auc_1", "instance_type": "it_1", "region": "us-central2-a",
        ...     "capacity": 6, "last_instance_price": "$11.20", "lowest_allocated_price": None})
        >>> row.last_instance_price, row.lowest_allocated_price, row.capacity
        (11.2, None, 6)
    """

    fid: str = Field(validation_alias=AliasChoices("fid", "id", "auction_id"))
    instance_type: str
    region: str
    capacity: int
    last_instance_price: Dollars = Field(validation_alias=AliasChoices("last_instance_price", "price"))
    lowest_allocated_price: OptionalDollars = None
    adjustable_memory: bool = False
    default_image_version: str | None = None
    min_bid_price: OptionalDollars = None
    gpu_type: str | None = None
    num_gpus: int | None = Field(default=None, validation_alias=AliasChoices("num_gpus", "gpu_count"))
    available_gpus: int | None = Field(
        default=None, validation_alias=AliasChoices("available_gpus", "inventory_quantity")
    )
    internode_interconnect: str | None = None
    intranode_interconnect: str | None = None

    @property
    def price_per_instance_hour(self) -> float:
        """The last clearing price in dollars per instance-hour (same as ``last_instance_price``)."""
        return self.last_instance_price


class GpuModel(_Model):
    """One entry of the older ``gpus: [{name, count}]`` shape of an instance type."""

    name: str
    count: int = 1


class InstanceTypeModel(_Model):
    """One entry of ``GET /v2/instance-types``.

    Accepts the current flat shape (``num_gpus``, ``gpu_type``) and the older ``gpus: [{name, count}]`` list,
    and the older ``ram`` spelling of ``ram_gb``.

    Example:
        >>> InstanceTypeModel.model_validate({"fid": "it_1", "name": "h100-80gb.sxm.8x",
        ...     "gpus": [{"name": "H100", "count": 8}]}).num_gpus
        8
    """

    fid: str = Field(validation_alias=AliasChoices("fid", "id"))
    name: str
    num_cpus: int | None = None
    cpu_type: str | None = None
    ram_gb: float | None = Field(default=None, validation_alias=AliasChoices("ram_gb", "ram"))
    num_gpus: int = 0
    gpu_type: str | None = None
    gpu_memory_gb: float | None = None
    gpu_socket: str | None = None
    local_storage_gb: float | None = None
    network_type: str | None = None
    ib_count: int | None = None
    bridge_count: int | None = None
    hourly_price: OptionalDollars = None

    @model_validator(mode="before")
    @classmethod
    def _from_gpus_list(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("num_gpus") is not None or not isinstance(data.get("gpus"), list):
            return data
        gpus = [g for g in data["gpus"] if isinstance(g, dict)]
        data = dict(data)
        data["num_gpus"] = sum(int(g.get("count") or 1) for g in gpus)
        if data.get("gpu_type") is None and gpus:
            data["gpu_type"] = gpus[0].get("name")
        return data


class PricePoint(_Model):
    """One spot price sample: dollars per instance-hour at a UTC time."""

    time: datetime
    price: float

    @field_validator("time")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return as_utc(value)


class PriceSeriesModel(_Model):
    """One series of ``GET /v2/pricing/history``: parallel lists of timestamps and dollar-string prices."""

    instance_type: str
    region: str
    timestamps: list[datetime] = Field(default_factory=list)
    spot_prices: list[OptionalDollars] = Field(default_factory=list)
    reserved_prices: list[OptionalDollars] = Field(default_factory=list)
    region_disabled: bool = False

    def spot_points(self) -> list[PricePoint]:
        """Pair timestamps with spot prices, skip gaps (``null``), and sort by time.

        Example:
            >>> PriceSeriesModel.model_validate({"instance_type": "it_1", "region": "r",
            ...     "timestamps": ["2025-09-14T18:00:00Z", "2025-09-14T17:00:00Z"],
            ...     "spot_prices": ["$11.20", "$10.00"]}).spot_points()[0].price
            10.0
        """
        # A truncated list on either side loses only the unpaired tail, never the whole series.
        pairs = zip(self.timestamps, self.spot_prices, strict=False)
        points = [PricePoint(time=t, price=p) for t, p in pairs if p is not None]
        return sorted(points, key=lambda p: p.time)


class PriceHistoryModel(_Model):
    """The body of ``GET /v2/pricing/history``: ``{series: [...], complete, show_disabled_regions}``."""

    series: list[PriceSeriesModel] = Field(default_factory=list)
    complete: bool | None = None
    show_disabled_regions: bool | None = None


class CurrentPricingModel(_Model):
    """The body of ``GET /v2/pricing/current``: integer cents per instance-hour, each possibly ``null``.

    The ``*_price`` properties give float dollars.

    Example:
        >>> p = CurrentPricingModel.model_validate({"spot_price_cents": 1120, "minimum_price_cents": 800})
        >>> p.spot_price, p.minimum_price, p.reserved_price
        (11.2, 8.0, None)
    """

    spot_price_cents: int | None = None
    reserved_price_cents: int | None = None
    minimum_price_cents: int | None = None
    lowest_allocated_bid_cents: int | None = None
    dynamic_win_price_cents: int | None = None
    available_capacity: int | None = None
    total_capacity: int | None = None

    @property
    def spot_price(self) -> float | None:
        """Current spot price, dollars per instance-hour."""
        return cents_to_dollars(self.spot_price_cents)

    @property
    def reserved_price(self) -> float | None:
        """Current reserved price, dollars per instance-hour."""
        return cents_to_dollars(self.reserved_price_cents)

    @property
    def minimum_price(self) -> float | None:
        """Minimum accepted bid, dollars per instance-hour."""
        return cents_to_dollars(self.minimum_price_cents)

    @property
    def lowest_allocated_bid(self) -> float | None:
        """Lowest bid currently holding an allocation, dollars per instance-hour."""
        return cents_to_dollars(self.lowest_allocated_bid_cents)

    @property
    def dynamic_win_price(self) -> float | None:
        """Bid that would win now, dollars per instance-hour."""
        return cents_to_dollars(self.dynamic_win_price_cents)
