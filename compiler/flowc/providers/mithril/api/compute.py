"""Typed wrappers of the Mithril endpoints that launch and tear down work: one function per endpoint.

Projects, spot bids, instances, volumes and SSH keys, as reference/mithril-api.md §1.2 lists them. Each function
sends the documented parameters through :meth:`ApiClient.send_json` and validates the answer into :mod:`.models`;
a body of the wrong shape raises :class:`~.errors.MalformedResponse`, never a pydantic error. List functions follow
``next_cursor`` through every page and stop with :class:`~.errors.MalformedResponse` on a cursor seen before or
after :data:`MAX_PAGES` pages, so a server cannot keep flowc paging forever.

Creates take an idempotency key (:func:`idempotency_key` derives one from what is being created), so a create the
caller sends again after an error with ``outcome_unknown`` is not applied twice.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel

from flowc.providers.mithril.api.errors import MalformedResponse, NotFound
from flowc.providers.mithril.api.models import (
    BidModel,
    InstanceModel,
    NamedModel,
    SshKeyModel,
    VolumeModel,
    validate_body,
    validate_rows,
)

if TYPE_CHECKING:
    from flowc.providers.mithril.api.client import ApiClient

PROJECTS = "/v2/projects"
BIDS = "/v2/spot/bids"
INSTANCES = "/v2/instances"
VOLUMES = "/v2/volumes"
SSH_KEYS = "/v2/ssh-keys"

PAGE_SIZE = 100
"""Rows asked for per page where the API takes a ``limit`` (its maximum)."""
MAX_PAGES = 1000
"""Pages read at most from one list: 100,000 bids or instances, far beyond any project."""
MAX_CURSOR_CHARS = 2048
"""Longest ``next_cursor`` sent back; a longer one is not an opaque cursor but a hostile or broken server."""

VOLUME_INTERFACES = ("Block", "File")

_FID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")

M = TypeVar("M", bound=BaseModel)


def list_projects(client: ApiClient) -> list[NamedModel]:
    """List the projects the key's user belongs to (``GET /v2/projects``).

    Args:
        client: The API client.

    Returns:
        One ``{fid, name}`` row per project.

    Raises:
        MalformedResponse: The body is not a list of projects.
        MithrilApiError: Any error of :meth:`ApiClient.send_json`.
    """
    return _all_pages(client, PROJECTS, {}, NamedModel, page_size=None)


def list_bids(client: ApiClient, project: str, *, name: str | None = None, status: str | None = None) -> list[BidModel]:
    """List a project's spot bids (``GET /v2/spot/bids``), every page.

    Args:
        client: The API client.
        project: The ``proj_…`` fid.
        name: Only the bids of this name.
        status: Only bids in this status: ``Open``, ``Allocated``, ``Preempting``, ``Terminated`` or ``Paused``.

    Returns:
        The bids, in the API's order.

    Raises:
        MalformedResponse: A page is not ``{data: [bids], next_cursor}``, a cursor repeats, or there are more
            than :data:`MAX_PAGES` pages.
        MithrilApiError: Any error of :meth:`ApiClient.send_json`.
    """
    params = {"project": project, "name": name, "status": status}
    return _all_pages(client, BIDS, params, BidModel, page_size=PAGE_SIZE)


def get_bid(client: ApiClient, fid: str) -> BidModel:
    """Fetch one bid (``GET /v2/spot/bids/{fid}``).

    Args:
        client: The API client.
        fid: The ``bid_…`` fid.

    Returns:
        The bid.

    Raises:
        NotFound: There is no such bid.
        MalformedResponse: The body is not a bid.
        MithrilApiError: Any other error of :meth:`ApiClient.send_json`.
        ValueError: ``fid`` is not shaped like a Mithril id.
    """
    path = _item_path(BIDS, fid)
    return validate_body(BidModel, client.get_json(path), where=f"GET {path}")


def create_bid(client: ApiClient, body: dict[str, Any], idempotency_key: str) -> BidModel:
    """Place a spot bid (``POST /v2/spot/bids``).

    Args:
        client: The API client.
        body: The CreateBidRequest: ``project``, ``region``, ``instance_type``, ``limit_price`` (``"$NN.NN"``),
            ``instance_quantity``, ``name`` and ``launch_specification``.
        idempotency_key: Sent as ``Idempotency-Key``; the same key for the same bid makes a resubmission safe.

    Returns:
        The bid the API created.

    Raises:
        PriceTooLow: The limit price is below what the API accepts.
        QuotaExceeded: The project's quota does not allow the bid.
        ValidationFailed: Another field was refused; ``detail`` names it by ``loc``.
        MalformedResponse: The API accepted the bid but its answer is not a bid.
        MithrilApiError: Any other error of :meth:`ApiClient.send_json`; with ``outcome_unknown`` when the bid may
            have been placed.
    """
    answer = client.send_json("POST", BIDS, body=body, idempotency_key=idempotency_key)
    return validate_body(BidModel, answer, where=f"POST {BIDS}", help=_created_help("bids"))


def update_bid(client: ApiClient, fid: str, changes: dict[str, Any]) -> BidModel:
    """Change a bid (``PATCH /v2/spot/bids/{fid}``).

    Args:
        client: The API client.
        fid: The ``bid_…`` fid.
        changes: UpdateBidRequest fields: ``limit_price`` (``"$30.00"``), ``paused``, ``volumes``, ``memory_gb``.

    Returns:
        The bid as changed.

    Raises:
        NotFound: There is no such bid.
        PriceTooLow: The new limit price is below what the API accepts.
        MalformedResponse: The answer is not a bid.
        MithrilApiError: Any other error of :meth:`ApiClient.send_json`.
        ValueError: ``fid`` is not shaped like a Mithril id.
    """
    path = _item_path(BIDS, fid)
    return validate_body(BidModel, client.send_json("PATCH", path, body=changes), where=f"PATCH {path}")


def cancel_bid(client: ApiClient, fid: str) -> bool:
    """Cancel a bid (``DELETE /v2/spot/bids/{fid}``); its instances are terminated.

    Args:
        client: The API client.
        fid: The ``bid_…`` fid.

    Returns:
        ``True`` when the API cancelled it now, ``False`` when it answered 404: the bid is gone already (or never
        was), which is what the caller wanted.

    Raises:
        MithrilApiError: Any error of :meth:`ApiClient.send_json` but 404.
        ValueError: ``fid`` is not shaped like a Mithril id.
    """
    return _delete(client, _item_path(BIDS, fid))


def list_instances(client: ApiClient, project: str, bid_fids: list[str]) -> list[InstanceModel]:
    """List the instances of some bids (``GET /v2/instances?bid_fid_in=…``), every page.

    Args:
        client: The API client.
        project: The ``proj_…`` fid.
        bid_fids: The bids whose instances to list; with none, nothing is asked and the list is empty.

    Returns:
        The instances, in the API's order.

    Raises:
        MalformedResponse: A page is not ``{data: [instances], next_cursor}``, a cursor repeats, or there are
            more than :data:`MAX_PAGES` pages.
        MithrilApiError: Any error of :meth:`ApiClient.send_json`.
    """
    if not bid_fids:
        return []  # without the filter the API would list every instance of the project
    params = {"project": project, "bid_fid_in": list(bid_fids)}
    return _all_pages(client, INSTANCES, params, InstanceModel, page_size=PAGE_SIZE)


def list_volumes(client: ApiClient, project: str, region: str | None = None) -> list[VolumeModel]:
    """List a project's volumes (``GET /v2/volumes``, without ``include_deleted``).

    Args:
        client: The API client.
        project: The ``proj_…`` fid.
        region: Only the volumes of this region.

    Returns:
        The volumes.

    Raises:
        MalformedResponse: The body is not a list of volumes.
        MithrilApiError: Any error of :meth:`ApiClient.send_json`.
    """
    return _all_pages(client, VOLUMES, {"project": project, "region": region}, VolumeModel, page_size=None)


def create_volume(
    client: ApiClient,
    *,
    project: str,
    name: str,
    region: str,
    size_gb: int,
    interface: Literal["Block", "File"],
    idempotency_key: str,
) -> VolumeModel:
    """Create a volume (``POST /v2/volumes``).

    Args:
        client: The API client.
        project: The ``proj_…`` fid.
        name: The volume's name: lower case letters, digits and ``-``, at most 64 characters.
        region: The region the volume lives in; only instances there can attach it.
        size_gb: Capacity in GB, at least 1.
        interface: ``"Block"`` (one instance at a time) or ``"File"`` (shared).
        idempotency_key: Sent as ``Idempotency-Key``.

    Returns:
        The volume the API created.

    Raises:
        QuotaExceeded: The project's storage quota does not allow it.
        ValidationFailed: A field was refused; ``detail`` names it by ``loc``.
        MalformedResponse: The API accepted it but its answer is not a volume.
        MithrilApiError: Any other error of :meth:`ApiClient.send_json`; with ``outcome_unknown`` when the volume
            may have been created.
        ValueError: ``interface`` is not ``Block`` or ``File``, or ``size_gb`` is not a positive integer.
    """
    if interface not in VOLUME_INTERFACES:
        raise ValueError(f"volume interface {interface!r} is not one of {', '.join(VOLUME_INTERFACES)}")
    if isinstance(size_gb, bool) or not isinstance(size_gb, int) or size_gb < 1:
        raise ValueError(f"volume size {size_gb!r} is not a positive number of GB")
    body = {"name": name, "project": project, "region": region, "size_gb": size_gb, "disk_interface": interface}
    answer = client.send_json("POST", VOLUMES, body=body, idempotency_key=idempotency_key)
    return validate_body(VolumeModel, answer, where=f"POST {VOLUMES}", help=_created_help("volumes"))


def delete_volume(client: ApiClient, fid: str) -> bool:
    """Delete a volume and its data (``DELETE /v2/volumes/{fid}``).

    Args:
        client: The API client.
        fid: The ``vol_…`` fid.

    Returns:
        ``True`` when the API deleted it now, ``False`` when it answered 404 (gone already).

    Raises:
        MithrilApiError: Any error of :meth:`ApiClient.send_json` but 404.
        ValueError: ``fid`` is not shaped like a Mithril id.
    """
    return _delete(client, _item_path(VOLUMES, fid))


def list_ssh_keys(client: ApiClient, project: str) -> list[SshKeyModel]:
    """List a project's SSH keys (``GET /v2/ssh-keys``).

    Args:
        client: The API client.
        project: The ``proj_…`` fid.

    Returns:
        The keys; those with ``required`` set are added to every launch by the API.

    Raises:
        MalformedResponse: The body is not a list of keys.
        MithrilApiError: Any error of :meth:`ApiClient.send_json`.
    """
    return _all_pages(client, SSH_KEYS, {"project": project}, SshKeyModel, page_size=None)


def idempotency_key(*parts: str | bytes | dict[str, Any]) -> str:
    """Derive an ``Idempotency-Key`` from what a request creates: the same parts give the same key.

    The parts are written as one canonical JSON text (sorted keys, no spaces, ASCII; each part tagged with its
    kind, bytes as hex) and hashed with SHA-256.

    Args:
        parts: Strings, bytes and JSON objects that identify the request, e.g. the project, the name and the body.

    Returns:
        ``"flowc-"`` and the first 32 hex digits of the hash.

    Raises:
        TypeError: A part, or a value inside a dict, is not JSON.
        ValueError: A dict holds ``NaN`` or an infinity.

    Example:
        >>> key = idempotency_key("proj_1", {"name": "train", "limit_price": "$24.00"})
        >>> key == idempotency_key("proj_1", {"limit_price": "$24.00", "name": "train"}), len(key)
        (True, 38)
        >>> idempotency_key("a") != idempotency_key(b"a")
        True
    """
    tagged: list[list[Any]] = []
    for part in parts:
        if isinstance(part, bytes):
            tagged.append(["bytes", part.hex()])
        elif isinstance(part, str):
            tagged.append(["str", part])
        elif isinstance(part, dict):
            tagged.append(["dict", part])
        else:
            raise TypeError(f"an idempotency key part must be str, bytes or dict, not {type(part).__name__}")
    canonical = json.dumps(tagged, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return "flowc-" + hashlib.sha256(canonical.encode("ascii")).hexdigest()[:32]


def _all_pages(
    client: ApiClient, path: str, params: dict[str, Any], model: type[M], *, page_size: int | None
) -> list[M]:
    """Read every page of a list endpoint, sending ``limit`` only where the API takes one."""
    where = f"GET {path}"
    rows: list[M] = []
    seen: set[str] = set()
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        body = client.get_json(path, params={**params, "limit": page_size, "next_cursor": cursor})
        page, cursor = _split_page(body, where)
        rows.extend(validate_rows(model, page, where=where))
        if cursor is None:
            return rows
        if cursor in seen:
            raise MalformedResponse(f"mithril api sent a page cursor it sent before on {where}, after "
                                    f"{len(seen) + 1} pages", help=_PAGING_HELP)
        seen.add(cursor)
    raise MalformedResponse(f"mithril api sent more than {MAX_PAGES} pages on {where}", help=_PAGING_HELP)


_PAGING_HELP = "the api's paging is broken; retry later, or report it to mithril support"


def _split_page(body: Any, where: str) -> tuple[Any, str | None]:
    """Return a page's rows and its next cursor: a bare list is the only page, ``{data, next_cursor}`` one of many.

    Raises:
        MalformedResponse: The body is neither, or the cursor is not a short printable string.
    """
    if isinstance(body, list):
        return body, None
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise MalformedResponse(f"mithril api sent an unexpected shape on {where}: not a list or {{data: [...]}}",
                                help="flowc may be older than the api; upgrade flowc, or report the payload")
    cursor = body.get("next_cursor")
    if cursor is None or cursor == "":
        return body["data"], None
    if not isinstance(cursor, str) or len(cursor) > MAX_CURSOR_CHARS or not cursor.isprintable():
        raise MalformedResponse(f"mithril api sent a page cursor that is not a short printable string on {where}",
                                help=_PAGING_HELP)
    return body["data"], cursor


def _item_path(collection: str, fid: str) -> str:
    """Return ``collection/fid``, refusing an id that could leave the collection (``..``, ``/``, ``?``).

    Example:
        >>> _item_path(BIDS, "bid_Zx91LmQ2wE7rT5yU")
        '/v2/spot/bids/bid_Zx91LmQ2wE7rT5yU'
    """
    if not isinstance(fid, str) or not _FID.fullmatch(fid):
        raise ValueError(f"{str(fid)[:40]!r} is not a mithril id (letters, digits, '_' and '-')")
    return f"{collection}/{fid}"


def _delete(client: ApiClient, path: str) -> bool:
    try:
        client.send_json("DELETE", path)
    except NotFound:
        return False
    return True


def _created_help(what: str) -> str:
    return f"the api accepted the request, so it was probably created: list the {what} by name before creating again"
