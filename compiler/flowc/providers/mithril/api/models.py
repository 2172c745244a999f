"""Pydantic models of the Mithril responses flowc reads, with the API's own field names.

Money arrives in two formats: dollar strings such as ``"$11.20"`` (availability, price history) and integer cents
(``*_price_cents`` from ``/v2/pricing/current``). Both are normalised here to float dollars per instance-hour, so
no caller parses money. Unknown fields are ignored, so additive API changes do not break flowc.

Nothing a server sends is trusted beyond these types: prices are finite and non-negative, counts and cents are
bounded integers (:data:`MAX_COUNT`), names are short printable strings, and times are representable in UTC, so a
hostile value fails validation here instead of overflowing later in arithmetic, sqlite or a terminal.
:func:`validate_body` and :func:`validate_rows` turn a body into models, or into
:class:`~.errors.MalformedResponse`, never a pydantic error.

The write side (bids, instances, volumes, SSH keys) keeps what a caller sends back unchanged: a bid's
``limit_price`` stays the API's dollar string, with its float in :attr:`BidModel.limit_price_dollars`.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from flowc.providers.mithril.api.errors import MalformedResponse
from flowc.providers.mithril.times import as_utc


def parse_dollars(value: Any) -> float | None:
    """Turn a dollar amount as the API writes it into a float.

    Args:
        value: ``"$11.20"``, ``"11.20"``, ``"$1,024.00"``, a number, or ``None``/``""``.

    Returns:
        The amount in dollars, or ``None`` for ``None`` and empty strings.

    Raises:
        ValueError: The value is not a dollar amount, or not a finite, non-negative one.

    Example:
        >>> parse_dollars("$11.20"), parse_dollars("$1,024.00"), parse_dollars(3), parse_dollars(None)
        (11.2, 1024.0, 3.0, None)
        >>> parse_dollars("$nan")
        Traceback (most recent call last):
        ValueError: not a dollar amount: '$nan'
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a dollar amount: {_short(value)}")
    if isinstance(value, int | float):
        amount = float(value) if abs(value) < 1e300 else math.inf
    elif isinstance(value, str):
        text = value.strip().replace(",", "").removeprefix("$").strip()
        if not text:
            return None
        try:
            amount = float(text) if len(text) <= 40 else math.nan
        except ValueError:
            raise ValueError(f"not a dollar amount: {_short(value)}") from None
    else:
        raise ValueError(f"not a dollar amount: {_short(value)}")
    if not math.isfinite(amount) or amount < 0:
        raise ValueError(f"not a dollar amount: {_short(value)}")
    return amount


def _short(value: Any) -> str:
    """Return ``repr(value)``, cut to 40 characters so a hostile value cannot flood a message."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _utc_time(value: datetime) -> datetime:
    """Return ``value`` in UTC, as a ``ValueError`` (not ``OverflowError``) when UTC cannot hold it."""
    try:
        return as_utc(value)
    except OverflowError:
        raise ValueError("time is out of range in utc") from None


def cents_to_dollars(cents: int | None) -> float | None:
    """Convert integer cents to float dollars, keeping ``None``.

    Example:
        >>> cents_to_dollars(1120), cents_to_dollars(None)
        (11.2, None)
    """
    return None if cents is None else cents / 100


MAX_COUNT = 2**53
"""Exclusive bound of every count and cents amount: exact in a float and in a sqlite integer."""

Count = Annotated[int, Field(ge=0, lt=MAX_COUNT)]
"""A non-negative integer count (instances, GPUs, CPUs) or amount of cents."""

Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"\A[^\x00-\x1f\x7f]+\z")]
"""An identifier or display name: 1 to 200 characters, no control characters."""

UtcTime = Annotated[datetime, AfterValidator(_utc_time)]
"""A time, normalised to UTC; naive times are taken to be UTC."""

Dollars = Annotated[float, BeforeValidator(parse_dollars)]
"""A price given as a dollar string (``"$11.20"``) or number, held as float dollars."""

OptionalDollars = Annotated[float | None, BeforeValidator(parse_dollars)]
"""Like :data:`Dollars`, but ``null`` and ``""`` become ``None``."""


def _dollar_string(value: str) -> str:
    """Return ``value`` when :func:`parse_dollars` reads an amount from it; raise ``ValueError`` otherwise."""
    if parse_dollars(value) is None:
        raise ValueError(f"not a dollar amount: {_short(value)}")
    return value


DollarString = Annotated[str, StringConstraints(max_length=40), AfterValidator(_dollar_string)]
"""A dollar amount kept as the API wrote it (``"$24.00"``), so it can be sent back unchanged."""

PublicKey = Annotated[
    str, StringConstraints(min_length=1, max_length=16_384, pattern=r"\A[^\x00-\x09\x0b-\x1f\x7f]+\z")
]
"""An OpenSSH public key: longer than a :data:`Name` allows, free of control characters but a line break."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True, allow_inf_nan=False)


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

    fid: Name = Field(validation_alias=AliasChoices("fid", "id", "auction_id"))
    instance_type: Name
    region: Name
    capacity: Count
    last_instance_price: Dollars = Field(validation_alias=AliasChoices("last_instance_price", "price"))
    lowest_allocated_price: OptionalDollars = None
    adjustable_memory: bool = False
    default_image_version: str | None = None
    min_bid_price: OptionalDollars = None
    gpu_type: str | None = None
    num_gpus: Count | None = Field(default=None, validation_alias=AliasChoices("num_gpus", "gpu_count"))
    available_gpus: Count | None = Field(
        default=None, validation_alias=AliasChoices("available_gpus", "inventory_quantity")
    )
    internode_interconnect: str | None = None
    intranode_interconnect: str | None = None

    @property
    def price_per_instance_hour(self) -> float:
        """The last clearing price in dollars per instance-hour (same as ``last_instance_price``)."""
        return self.last_instance_price


class NamedModel(_Model):
    """One row of a list of named objects: ``GET /v2/projects``, ``/v2/ssh-keys``, ``/v2/volumes``.

    Example:
        >>> NamedModel.model_validate({"fid": "proj_1", "name": "research", "created_at": "…"}).fid
        'proj_1'
    """

    fid: Name = Field(validation_alias=AliasChoices("fid", "id"))
    name: Name


class GpuModel(_Model):
    """One entry of the older ``gpus: [{name, count}]`` shape of an instance type."""

    name: Name
    count: Count = 1


class InstanceTypeModel(_Model):
    """One entry of ``GET /v2/instance-types``.

    Accepts the current flat shape (``num_gpus``, ``gpu_type``) and the older ``gpus: [{name, count}]`` list,
    and the older ``ram`` spelling of ``ram_gb``.

    Example:
        >>> InstanceTypeModel.model_validate({"fid": "it_1", "name": "h100-80gb.sxm.8x",
        ...     "gpus": [{"name": "H100", "count": 8}]}).num_gpus
        8
    """

    fid: Name = Field(validation_alias=AliasChoices("fid", "id"))
    name: Name
    num_cpus: Count | None = None
    cpu_type: str | None = None
    ram_gb: float | None = Field(default=None, validation_alias=AliasChoices("ram_gb", "ram"))
    num_gpus: Count = 0
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
        # Each entry is validated as a GpuModel first, so a count of the wrong type is a validation error here,
        # not a TypeError from int().
        gpus = [GpuModel.model_validate({**g, "count": g.get("count") or 1}) for g in data["gpus"]
                if isinstance(g, dict)]
        data = dict(data)
        data["num_gpus"] = sum(g.count for g in gpus)
        if data.get("gpu_type") is None and gpus:
            data["gpu_type"] = gpus[0].name
        return data


class PricePoint(_Model):
    """One spot price sample: dollars per instance-hour at a UTC time."""

    time: datetime
    price: float

    @field_validator("time")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return _utc_time(value)


class PriceSeriesModel(_Model):
    """One series of ``GET /v2/pricing/history``: parallel lists of timestamps and dollar-string prices."""

    instance_type: Name
    region: Name
    timestamps: list[UtcTime] = Field(default_factory=list)
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

    spot_price_cents: Count | None = None
    reserved_price_cents: Count | None = None
    minimum_price_cents: Count | None = None
    lowest_allocated_bid_cents: Count | None = None
    dynamic_win_price_cents: Count | None = None
    available_capacity: Count | None = None
    total_capacity: Count | None = None

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


class BidModel(_Model):
    """A spot bid as ``POST``, ``GET`` and ``PATCH /v2/spot/bids`` return it.

    ``limit_price`` is the API's dollar string per instance-hour, kept verbatim; :attr:`limit_price_dollars` is
    its float. ``launch_specification`` is echoed back raw: it holds the startup script, which anyone in the
    project can read, so nothing secret belongs in it.

    Example:
        >>> bid = BidModel.model_validate({"fid": "bid_1", "name": "train-3fa9c1", "project": "proj_1",
        ...     "created_at": "2025-09-14T17:02:11Z", "limit_price": "$24.00", "instance_quantity": 2,
        ...     "instance_type": "it_1", "region": None, "instances": [], "status": "Open"})
        >>> bid.limit_price, bid.limit_price_dollars, bid.created_at.isoformat()
        ('$24.00', 24.0, '2025-09-14T17:02:11+00:00')
    """

    fid: Name
    name: Name
    project: Name
    created_by: Name | None = None
    created_at: UtcTime
    deactivated_at: UtcTime | None = None
    limit_price: DollarString
    instance_quantity: Count
    instance_type: Name
    region: Name | None = None
    instances: list[Name] = Field(default_factory=list)
    launch_specification: dict[str, Any] = Field(default_factory=dict)
    status: Name

    @property
    def limit_price_dollars(self) -> float:
        """The limit price in float dollars per instance-hour."""
        return parse_dollars(self.limit_price) or 0.0


class InstanceModel(_Model):
    """One row of ``GET /v2/instances``: a machine of a bid (or a reservation).

    ``ssh_destination`` (a host or IP, possibly ``host:port``) is ``None`` until the instance can be reached.

    Example:
        >>> InstanceModel.model_validate({"fid": "inst_1", "bid": "bid_1", "status": "STATUS_RUNNING",
        ...     "ssh_destination": "203.0.113.7", "private_ip": "10.0.0.2"}).ssh_destination
        '203.0.113.7'
    """

    fid: Name
    name: Name | None = None
    project: Name | None = None
    created_at: UtcTime | None = None
    instance_type: Name | None = None
    region: Name | None = None
    bid: Name | None = None
    status: Name
    ssh_destination: Name | None = None
    private_ip: Name | None = None


class VolumeModel(_Model):
    """One volume of ``GET`` or ``POST /v2/volumes``; ``interface`` is ``Block`` or ``File``.

    Example:
        >>> VolumeModel.model_validate({"fid": "vol_1", "name": "data", "region": "us-central2-a",
        ...     "capacity_gb": 500, "interface": "Block", "bids": ["bid_1"]}).capacity_gb
        500
    """

    fid: Name = Field(validation_alias=AliasChoices("fid", "id"))
    name: Name
    region: Name
    capacity_gb: Count
    interface: Name = Field(validation_alias=AliasChoices("interface", "disk_interface"))
    project: Name | None = None
    created_at: UtcTime | None = None
    deleted_at: UtcTime | None = None
    bids: list[Name] = Field(default_factory=list)


class SshKeyModel(_Model):
    """One key of ``GET /v2/ssh-keys``; keys marked ``required`` are added to every launch by the API.

    Example:
        >>> SshKeyModel.model_validate({"fid": "sshkey_1", "name": "laptop", "public_key": "ssh-ed25519 AAAA"})
        SshKeyModel(fid='sshkey_1', name='laptop', project=None, public_key='ssh-ed25519 AAAA', required=False)
    """

    fid: Name = Field(validation_alias=AliasChoices("fid", "id"))
    name: Name
    project: Name | None = None
    public_key: PublicKey | None = None
    required: bool = False


M = TypeVar("M", bound=BaseModel)


def validate_body(model: type[M], body: Any, *, where: str, help: str | None = None) -> M:
    """Validate one decoded body into ``model``.

    Args:
        model: The model class.
        body: The decoded JSON value.
        where: The request, as messages name it: ``"POST /v2/spot/bids"``.
        help: The error's help line; a default one says flowc may be older than the API.

    Returns:
        The model.

    Raises:
        MalformedResponse: The body does not have the model's shape.
    """
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise _malformed(where, exc, help) from None


def validate_rows(model: type[M], rows: Any, *, where: str) -> list[M]:
    """Validate a decoded list into models of ``model``, like :func:`validate_body`.

    Raises:
        MalformedResponse: ``rows`` is not a list, or a row does not have the model's shape.
    """
    try:
        return TypeAdapter(list[model]).validate_python(rows)  # type: ignore[valid-type]
    except ValidationError as exc:
        raise _malformed(where, exc, None) from None


def _malformed(where: str, exc: ValidationError, help: str | None) -> MalformedResponse:
    """Name the first invalid field and why, cut short, with control characters escaped.

    The location holds the server's own object keys, so it is not trusted to be short or printable.
    """
    err = exc.errors(include_url=False, include_input=False)[0]
    loc = ".".join(str(p) for p in err["loc"]) or "body"
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in f"{loc}: {err['msg'].lower()}")
    text = text if len(text) <= 200 else text[:197] + "..."
    return MalformedResponse(
        f"mithril api sent an unexpected shape on {where}: {text}",
        help=help or "flowc may be older than the api; upgrade flowc, or report the payload",
    )
