"""Typed wrappers of the Mithril GET endpoints flowc's pricing uses: one function per endpoint.

Each function sends the documented query parameters through :meth:`ApiClient.get_json` and validates the body
into :mod:`.models`. A body of the wrong shape raises :class:`~.errors.MalformedResponse`, never a pydantic error.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from flowc.providers.mithril.api.errors import MalformedResponse
from flowc.providers.mithril.api.models import (
    AuctionModel,
    CurrentPricingModel,
    InstanceTypeModel,
    NamedModel,
    PriceHistoryModel,
    PricePoint,
)
from flowc.providers.mithril.times import iso_utc

if TYPE_CHECKING:
    from flowc.providers.mithril.api.client import ApiClient

AVAILABILITY = "/v2/spot/availability"
INSTANCE_TYPES = "/v2/instance-types"
PRICING_HISTORY = "/v2/pricing/history"
PRICING_CURRENT = "/v2/pricing/current"

M = TypeVar("M", bound=BaseModel)

_WRAPPER_KEYS = ("data", "auctions", "availability", "instance_types")


def spot_availability(client: ApiClient, *, project: str | None = None) -> list[AuctionModel]:
    """List the spot market rows of ``GET /v2/spot/availability``.

    Args:
        client: The API client.
        project: Optional ``proj_…`` fid; the API overlays project-scoped markets when given.

    Returns:
        One :class:`AuctionModel` per (instance type, region), prices in dollars per instance-hour.

    Raises:
        MalformedResponse: The body is not a list of availability rows.
        MithrilApiError: Any error of :meth:`ApiClient.get_json`.
    """
    body = client.get_json(AVAILABILITY, params={"project": project})
    return _validate_list(AuctionModel, _unwrap(body), AVAILABILITY)


def instance_types(client: ApiClient) -> list[InstanceTypeModel]:
    """List the GPU instance types of ``GET /v2/instance-types``.

    Args:
        client: The API client.

    Returns:
        One :class:`InstanceTypeModel` per type, with ``num_gpus`` filled from either payload shape.

    Raises:
        MalformedResponse: The body is not a list of instance types.
        MithrilApiError: Any error of :meth:`ApiClient.get_json`.
    """
    body = client.get_json(INSTANCE_TYPES)
    return _validate_list(InstanceTypeModel, _unwrap(body), INSTANCE_TYPES)


def price_history(
    client: ApiClient,
    instance_type: str,
    region: str,
    hours: int,
    *,
    now: datetime | None = None,
) -> list[PricePoint]:
    """Fetch the spot price history of one instance type in one region from ``GET /v2/pricing/history``.

    Sends ``instance_types``, ``region``, ``num_samples=-1`` (the complete series) and an ISO 8601
    ``start_time``/``end_time`` window of ``hours`` ending at ``now``.

    Args:
        client: The API client.
        instance_type: The ``it_…`` fid.
        region: The region, e.g. ``us-central2-a``.
        hours: Length of the window, in hours (at least 1).
        now: End of the window; defaults to the current UTC time.

    Returns:
        The samples of the matching series, oldest first, in dollars per instance-hour; gaps are skipped.
        An empty list when the API has no series for the pair.

    Raises:
        MalformedResponse: The body is not ``{series: [...]}``.
        MithrilApiError: Any error of :meth:`ApiClient.get_json`.
    """
    end = (now or datetime.now(UTC)).astimezone(UTC)
    start = end - timedelta(hours=max(1, hours))
    params = {
        "instance_types": instance_type,
        "region": region,
        "num_samples": -1,
        "start_time": iso_utc(start),
        "end_time": iso_utc(end),
    }
    history = _validate(PriceHistoryModel, client.get_json(PRICING_HISTORY, params=params), PRICING_HISTORY)
    points: list[PricePoint] = []
    try:
        for series in history.series:
            if series.instance_type == instance_type and series.region == region:
                points.extend(series.spot_points())
    except ValidationError as exc:
        raise _malformed(PRICING_HISTORY, exc) from None
    return sorted(points, key=lambda p: p.time)


def pricing_current(
    client: ApiClient, instance_type: str, region: str | None = None, *, instance_quantity: int = 1
) -> CurrentPricingModel:
    """Fetch live quotes from ``GET /v2/pricing/current``.

    Args:
        client: The API client.
        instance_type: The ``it_…`` fid.
        region: The region; ``None`` lets the API choose.
        instance_quantity: Instances to quote for (1..256).

    Returns:
        The quote, in cents with dollar properties (``spot_price``, ``minimum_price``, ...).

    Raises:
        MalformedResponse: The body is not an object of the documented fields.
        MithrilApiError: Any error of :meth:`ApiClient.get_json`.
    """
    params = {"instance_type": instance_type, "region": region, "instance_quantity": instance_quantity}
    return _validate(CurrentPricingModel, client.get_json(PRICING_CURRENT, params=params), PRICING_CURRENT)


def named_ids(client: ApiClient, path: str, params: dict[str, Any] | None = None) -> dict[str, str]:
    """Map names to ids from a list endpoint such as ``/v2/projects``, ``/v2/ssh-keys`` or ``/v2/volumes``.

    Args:
        client: The API client.
        path: The list endpoint.
        params: Query parameters (``project``, ``region``, ...).

    Returns:
        ``{name: fid}``; of two rows with one name, the later wins.

    Raises:
        MalformedResponse: The body is not a list of ``{fid, name}`` rows.
        MithrilApiError: Any error of :meth:`ApiClient.get_json`.
    """
    rows = _validate_list(NamedModel, _unwrap(client.get_json(path, params=params)), path)
    return {row.name: row.fid for row in rows}


def _unwrap(body: Any) -> Any:
    if isinstance(body, dict):
        for key in _WRAPPER_KEYS:
            if isinstance(body.get(key), list):
                return body[key]
    return body


def _validate(model: type[M], body: Any, path: str) -> M:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise _malformed(path, exc) from None


def _validate_list(model: type[M], body: Any, path: str) -> list[M]:
    try:
        return TypeAdapter(list[model]).validate_python(body)  # type: ignore[valid-type]
    except ValidationError as exc:
        raise _malformed(path, exc) from None


def _malformed(path: str, exc: ValidationError) -> MalformedResponse:
    return MalformedResponse(
        f"mithril api sent an unexpected shape on GET {path}: {_first_error(exc)}",
        help="flowc may be older than the api; upgrade flowc, or report the payload",
    )


def _first_error(exc: ValidationError) -> str:
    """Name the first invalid field and why, cut short, with control characters escaped.

    The location holds the server's own object keys, so it is not trusted to be short or printable.
    """
    err = exc.errors(include_url=False, include_input=False)[0]
    loc = ".".join(str(p) for p in err["loc"]) or "body"
    text = f"{loc}: {err['msg'].lower()}"
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= 200 else text[:197] + "..."
