"""A fake Mithril REST API for tests: a real HTTP server on 127.0.0.1 with seeded, realistic state.

It answers the endpoints flowc uses in the shapes of reference/mithril-api.md (bare catalog lists, paginated
``{data, next_cursor}`` bids and instances, FastAPI-style 422 ``detail`` with ``loc``, dollar strings and cents),
validates bid bodies against ``tests/schemas/mithril-create-bid.json`` plus referential integrity, honours
``Idempotency-Key``, and lets a test drive bid lifecycles and inject failures (errors, drops, hangs).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import secrets
import string
import threading
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonschema

BID_SCHEMA = json.loads((Path(__file__).parent / "schemas" / "mithril-create-bid.json").read_text())
"""CreateBidRequest from Mithril's OpenAPI spec; the top level admits extra keys such as ``placement_spec``."""

UPDATE_BID_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"limit_price": {"type": "string"}, "paused": {"type": "boolean"},
                   "volumes": {"type": "array", "items": {"type": "string"}},
                   "memory_gb": {"type": ["integer", "null"]}},
}
CREATE_VOLUME_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 64}, "project": {"type": "string"},
                   "disk_interface": {"enum": ["Block", "File"]}, "region": {"type": "string"},
                   "size_gb": {"type": "integer", "minimum": 1}},
    "required": ["name", "project", "disk_interface", "region", "size_gb"],
}

DEFAULT_PROJECTS = {"ml-team": "proj_8Kq2nLw0ZbT4xYcd", "research": "proj_Wd3Rk9sQe1Lm5TzA"}
USER_FID = "user_kfV4CCaapLiqCNlv"
SSH_DESTINATION = "127.0.0.1:2222"
SEED_TIME = "2025-09-01T12:00:00Z"

INSTANCE_TYPES: dict[str, dict[str, Any]] = {
    "h100-80gb.sxm.8x": {"num_cpus": 192, "cpu_type": "Intel Xeon Platinum 8480+", "ram_gb": 1800, "num_gpus": 8,
                         "gpu_type": "H100", "gpu_memory_gb": 80, "gpu_socket": "SXM5", "local_storage_gb": 7800,
                         "network_type": "InfiniBand", "ib_count": 8, "bridge_count": 0, "hourly_price": 19.92},
    "a100-80gb.sxm.1x": {"num_cpus": 24, "cpu_type": "AMD EPYC 7763", "ram_gb": 240, "num_gpus": 1,
                         "gpu_type": "A100", "gpu_memory_gb": 80, "gpu_socket": "SXM4", "local_storage_gb": 960,
                         "network_type": None, "ib_count": 0, "bridge_count": 0, "hourly_price": 1.99},
    "a100-80gb.sxm.4x": {"num_cpus": 96, "cpu_type": "AMD EPYC 7763", "ram_gb": 960, "num_gpus": 4,
                         "gpu_type": "A100", "gpu_memory_gb": 80, "gpu_socket": "SXM4", "local_storage_gb": 3840,
                         "network_type": None, "ib_count": 0, "bridge_count": 0, "hourly_price": 7.96},
    "a100-80gb.sxm.8x": {"num_cpus": 192, "cpu_type": "AMD EPYC 7763", "ram_gb": 1920, "num_gpus": 8,
                         "gpu_type": "A100", "gpu_memory_gb": 80, "gpu_socket": "SXM4", "local_storage_gb": 7680,
                         "network_type": "InfiniBand", "ib_count": 8, "bridge_count": 0, "hourly_price": 15.92},
    "h200.8x": {"num_cpus": 192, "cpu_type": "Intel Xeon Platinum 8568Y+", "ram_gb": 2048, "num_gpus": 8,
                "gpu_type": "H200", "gpu_memory_gb": 141, "gpu_socket": "SXM5", "local_storage_gb": 28000,
                "network_type": "InfiniBand", "ib_count": 8, "bridge_count": 0, "hourly_price": 27.92},
}
"""Instance types by display name (names from compiler/flowc/data/instances.json, fields of InstanceTypeModel)."""

OFFERS: tuple[tuple[str, str, int, int, str, str | None], ...] = (
    # (type name, region, capacity, total capacity, last instance price, lowest allocated price)
    ("h100-80gb.sxm.8x", "us-central2-a", 6, 40, "$11.20", "$11.20"),
    ("h100-80gb.sxm.8x", "us-central1-b", 2, 16, "$12.00", "$11.80"),
    ("h100-80gb.sxm.8x", "eu-central1-a", 0, 8, "$13.50", None),
    ("a100-80gb.sxm.1x", "us-central1-b", 14, 64, "$1.05", None),
    ("a100-80gb.sxm.1x", "us-central2-a", 8, 32, "$1.20", "$1.10"),
    ("a100-80gb.sxm.4x", "us-central1-b", 3, 16, "$4.40", "$4.20"),
    ("a100-80gb.sxm.4x", "eu-central1-a", 5, 12, "$4.10", None),
    ("a100-80gb.sxm.8x", "us-central2-a", 2, 10, "$8.80", "$8.40"),
    ("h200.8x", "us-central5-a", 4, 24, "$16.00", "$15.50"),
)
"""The spot market: each row gets its own ``it_`` fid, so one type name has a different fid in each region."""

MINIMUM_PRICES = {"h100-80gb.sxm.8x": "$8.00", "a100-80gb.sxm.1x": "$0.75", "a100-80gb.sxm.4x": "$3.00",
                  "a100-80gb.sxm.8x": "$6.00", "h200.8x": "$12.00"}
"""The lowest limit price per instance-hour a bid may carry, by type name (``min_prices=`` overrides)."""

SSH_KEYS = (("alice-laptop", False), ("ci-runner", True))
"""(name, required) of the SSH keys seeded into every project."""

VOLUMES = (("ckpts", "File", "us-central2-a", 500), ("datasets", "Block", "us-central1-b", 100))
"""(name, interface, region, capacity_gb) of the volumes seeded into every project."""

LIVE_STATUSES = frozenset({"Open", "Allocated", "Paused", "Preempting"})
BID_STATUSES = LIVE_STATUSES | {"Terminated"}
FAULT_KINDS = frozenset({"500", "503", "apply_then_500", "apply_then_hang", "drop", "429", "403_quota", "422"})
MAX_BODY = 1 << 20

_MONEY = re.compile(r"\$(\d{1,7})(?:\.(\d{1,2}))?")
_BID_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
_VOLUME_NAME = re.compile(r"[a-z](?:[-a-z0-9]*[a-z0-9])?")
_ALPHABET = string.ascii_letters + string.digits
_PYDANTIC_TYPES = {"string": ("string_type", "Input should be a valid string"),
                   "integer": ("int_type", "Input should be a valid integer"),
                   "boolean": ("bool_type", "Input should be a valid boolean"),
                   "array": ("list_type", "Input should be a valid list"),
                   "object": ("model_attributes_type", "Input should be a valid dictionary or object")}


def seed_fid(prefix: str, *parts: str) -> str:
    """Return a stable Mithril-looking fid (``prefix_`` + 16 letters and digits) derived from ``parts``.

    Example:
        >>> seed_fid("it", "h100-80gb.sxm.8x", "us-central2-a")
        'it_YjYUmIbeihKFcYI3'
    """
    number = int.from_bytes(hashlib.sha256("|".join((prefix, *parts)).encode()).digest()[:12], "big")
    return prefix + "_" + "".join(_ALPHABET[(number >> (6 * i)) % 62] for i in range(16))


def _new_fid(prefix: str) -> str:
    return prefix + "_" + "".join(secrets.choice(_ALPHABET) for _ in range(16))


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cents(text: str) -> int | None:
    """Return the cents of a ``"$NN.NN"`` string, or ``None`` when it is not one."""
    match = _MONEY.fullmatch(text)
    return None if match is None else int(match[1]) * 100 + int((match[2] or "0").ljust(2, "0"))


def _dollars(cents: int) -> str:
    return f"${cents // 100}.{cents % 100:02d}"


class ApiError(Exception):
    """An error answer: an HTTP status and the ``detail`` of its JSON body."""

    def __init__(self, status: int, detail: Any) -> None:
        """Answer ``status`` with ``{"detail": detail}``."""
        super().__init__(status, detail)
        self.status, self.detail = status, detail


def _invalid(loc: Sequence[str | int], msg: str, kind: str = "value_error") -> dict[str, Any]:
    return {"loc": list(loc), "msg": msg, "type": kind}


def _check_schema(schema: dict[str, Any], body: Any) -> None:
    """Raise a 422 that describes each way ``body`` fails ``schema`` as FastAPI would, at ``loc: ["body", ...]``."""
    details = []
    for error in jsonschema.Draft202012Validator(schema).iter_errors(body):
        loc = ["body", *error.absolute_path]
        if error.validator == "required":
            details += [_invalid([*loc, name], "Field required", "missing")
                        for name in error.validator_value if name not in error.instance]
        elif error.validator == "additionalProperties":
            details += [_invalid([*loc, name], "Extra inputs are not permitted", "extra_forbidden")
                        for name in error.instance if name not in error.schema.get("properties", {})]
        elif error.validator == "type":
            expected = error.validator_value if isinstance(error.validator_value, str) else error.validator_value[0]
            kind, msg = _PYDANTIC_TYPES.get(expected, ("type_error", error.message))
            details.append(_invalid(loc, msg, kind))
        elif error.validator == "minimum":
            details.append(_invalid(loc, f"Input should be greater than or equal to {error.validator_value}",
                                    "greater_than_equal"))
        elif error.validator == "enum":
            choices = " or ".join(repr(v) for v in error.validator_value)
            details.append(_invalid(loc, f"Input should be {choices}", "enum"))
        else:
            details.append(_invalid(loc, error.message, error.validator))
    if details:
        raise ApiError(422, sorted(details, key=lambda d: [str(part) for part in d["loc"]]))


@dataclass
class RecordedRequest:
    """One request as the fake received it, in arrival order; ``status`` is what it answered (``None``: nothing)."""

    method: str
    path: str
    query: dict[str, list[str]]
    json: Any
    headers: dict[str, str]
    body: bytes = b""
    status: int | None = None


@dataclass
class _Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    text: str | None = None

    def payload(self) -> bytes:
        if self.text is not None:
            return self.text.encode()
        return b"" if self.status == 204 else json.dumps(self.body).encode()


@dataclass
class _Fault:
    method: str
    path_prefix: str
    kind: str
    times: int
    detail: Any
    hang_s: float


@dataclass
class _Call:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    headers: dict[str, str]
    params: dict[str, str] = field(default_factory=dict)

    def one(self, name: str, *, required: bool = False) -> str | None:
        values = self.query.get(name)
        if not values and required:
            raise ApiError(422, [_invalid(["query", name], "Field required", "missing")])
        return values[-1] if values else None

    def json_body(self) -> Any:
        if self.body is None:
            raise ApiError(422, [_invalid(["body"], "Field required", "missing")])
        return self.body


class FakeMithril:
    """A Mithril API on ``127.0.0.1:<free port>``, serving from a daemon thread until :meth:`close`.

    Endpoints: ``GET /v2/me``, ``/v2/projects``, ``/v2/instance-types``, ``/v2/spot/availability``,
    ``/v2/ssh-keys``, ``/v2/pricing/current``; ``POST``/``GET /v2/spot/bids``, ``GET``/``PATCH``/``DELETE
    /v2/spot/bids/{fid}``, ``GET /v2/spot/bids/{fid}/status``; ``GET /v2/instances``; ``GET``/``POST
    /v2/volumes``, ``DELETE /v2/volumes/{fid}``. Anything else answers 404 (405 for a known path).

    All state lives under one lock; the dicts that properties return are copies. Seed fids are stable
    (:func:`seed_fid`); use :meth:`project_fid`, :meth:`instance_type_fid`, :meth:`ssh_key_fid` and
    :meth:`volume_fid` instead of spelling them.

    Args:
        key: The API key the server accepts as ``Authorization: Bearer <key>``.
        projects: Project names to fids; defaults to :data:`DEFAULT_PROJECTS`.
        min_prices: Minimum limit prices by type name (``"$NN.NN"``), merged over :data:`MINIMUM_PRICES`.
        page_size: The most items one page of a paginated list holds, whatever ``limit`` asks.

    Example:
        >>> with FakeMithril() as fake:
        ...     fake.url.startswith("http://127.0.0.1:"), fake.project_fid("ml-team")
        (True, 'proj_8Kq2nLw0ZbT4xYcd')
    """

    def __init__(self, key: str = "fkey_test", projects: Mapping[str, str] | None = None,
                 min_prices: Mapping[str, str] | None = None, page_size: int = 2) -> None:
        """Seed the state and start serving."""
        self.key, self.page_size = key, page_size
        self.projects = dict(DEFAULT_PROJECTS if projects is None else projects)
        self.min_prices = {**MINIMUM_PRICES, **(min_prices or {})}
        if any(_cents(price) is None for price in self.min_prices.values()):
            raise ValueError(f"minimum prices must look like '$NN.NN': {self.min_prices}")
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._requests: list[RecordedRequest] = []
        self._faults: list[_Fault] = []
        self._bids: dict[str, dict[str, Any]] = {}
        self._instances: dict[str, dict[str, Any]] = {}
        self._seq: dict[str, int] = {}
        self._resume_status: dict[str, str] = {}
        self._idempotent: dict[tuple[str, str], tuple[Any, _Reply]] = {}
        self._polls: dict[str, int] = {}
        self._auto_polls = 0
        self._auto_ssh = SSH_DESTINATION
        self._seed()
        self._routes: list[tuple[str, re.Pattern[str], Callable[[_Call], _Reply]]] = [
            (method, re.compile(pattern), handler) for method, pattern, handler in (
                ("GET", r"/v2/me", self._get_me),
                ("GET", r"/v2/projects", self._list_projects),
                ("GET", r"/v2/instance-types", self._list_instance_types),
                ("GET", r"/v2/spot/availability", self._list_availability),
                ("GET", r"/v2/ssh-keys", self._list_ssh_keys),
                ("GET", r"/v2/pricing/current", self._get_pricing),
                ("POST", r"/v2/spot/bids", self._create_bid),
                ("GET", r"/v2/spot/bids", self._list_bids),
                ("GET", r"/v2/spot/bids/(?P<fid>[^/]+)", self._get_bid),
                ("GET", r"/v2/spot/bids/(?P<fid>[^/]+)/status", self._get_bid_status),
                ("PATCH", r"/v2/spot/bids/(?P<fid>[^/]+)", self._update_bid),
                ("DELETE", r"/v2/spot/bids/(?P<fid>[^/]+)", self._delete_bid),
                ("GET", r"/v2/instances", self._list_instances),
                ("GET", r"/v2/volumes", self._list_volumes),
                ("POST", r"/v2/volumes", self._create_volume),
                ("DELETE", r"/v2/volumes/(?P<fid>[^/]+)", self._delete_volume),
            )]
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(self))
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-mithril", daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def _seed(self) -> None:
        self._offers: dict[str, dict[str, Any]] = {}
        for name, region, capacity, total, last, lowest in OFFERS:
            fid = seed_fid("it", name, region)
            self._offers[fid] = {"name": name, "capacity": capacity, "total_capacity": total, "row": {
                "fid": seed_fid("auc", name, region), "instance_type": fid, "region": region, "capacity": capacity,
                "last_instance_price": last, "lowest_allocated_price": lowest, "adjustable_memory": False,
                "default_image_version": "imgver_u22cuda122"}}
        self.regions = sorted({offer["row"]["region"] for offer in self._offers.values()})
        self._ssh_keys: dict[str, dict[str, Any]] = {}
        self._volumes: dict[str, dict[str, Any]] = {}
        for project in self.projects.values():
            for name, required in SSH_KEYS:
                fid = seed_fid("sshkey", project, name)
                material = base64.b64encode(hashlib.sha256(fid.encode()).digest()).decode().rstrip("=")
                self._ssh_keys[fid] = {"fid": fid, "name": name, "project": project, "created_at": SEED_TIME,
                                       "public_key": f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{material} {name}",
                                       "required": required}
            for name, interface, region, size in VOLUMES:
                fid = seed_fid("vol", project, name)
                self._volumes[fid] = self._volume_record(fid, name, project, interface, region, size, SEED_TIME)

    # Public helpers for tests.

    def __enter__(self) -> FakeMithril:
        """Return the running server."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stop the server (see :meth:`close`)."""
        self.close()

    def close(self) -> None:
        """Stop serving, wake hanging connections and free the port; calling it again does nothing."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def project_fid(self, name: str) -> str:
        """Return the fid of project ``name`` (a fid is returned as it is)."""
        return self.projects.get(name, name)

    def instance_type_fid(self, name: str, region: str) -> str:
        """Return the fid of instance type ``name`` in ``region``; it differs per region.

        Raises:
            KeyError: The type is not offered in that region.
        """
        for fid, offer in self._offers.items():
            if offer["name"] == name and offer["row"]["region"] == region:
                return fid
        raise KeyError(f"{name} is not offered in {region}")

    def ssh_key_fid(self, project: str, name: str) -> str:
        """Return the fid of seeded SSH key ``name`` (``alice-laptop`` or ``ci-runner``) of a project name or fid."""
        return seed_fid("sshkey", self.project_fid(project), name)

    def volume_fid(self, project: str, name: str) -> str:
        """Return the fid of seeded volume ``name`` (``ckpts`` or ``datasets``) of a project name or fid."""
        return seed_fid("vol", self.project_fid(project), name)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in order (header names lower-cased)."""
        with self._lock:
            return list(self._requests)

    @property
    def bids(self) -> dict[str, dict[str, Any]]:
        """A copy of every bid by fid, terminated ones included, as BidModel dicts."""
        with self._lock:
            return copy.deepcopy(self._bids)

    @property
    def instances(self) -> dict[str, dict[str, Any]]:
        """A copy of every instance by fid, as InstanceModel dicts."""
        with self._lock:
            return copy.deepcopy(self._instances)

    @property
    def volumes(self) -> dict[str, dict[str, Any]]:
        """A copy of every volume by fid, deleted ones included (``deleted_at`` set), as VolumeModel dicts."""
        with self._lock:
            return {fid: self._volume_out(volume) for fid, volume in self._volumes.items()}

    def live_bids(self, project: str | None = None, name: str | None = None) -> list[dict[str, Any]]:
        """Return copies of the bids that are Open, Allocated, Paused or Preempting, oldest first.

        Args:
            project: Only this project (name or fid).
            name: Only bids of this name.

        Returns:
            BidModel dicts.
        """
        with self._lock:
            return [copy.deepcopy(bid) for bid in self._ordered(self._bids.values())
                    if bid["status"] in LIVE_STATUSES and project in (None, bid["project"], self._name_of(bid))
                    and name in (None, bid["name"])]

    def allocate(self, bid_fid: str | None = None) -> list[str]:
        """Move Open bids (all, or ``bid_fid``) to Allocated with ``instance_quantity`` STATUS_STARTING instances.

        Returns:
            The fids of the bids that moved.

        Raises:
            ValueError: ``bid_fid`` is unknown or not Open.
        """
        with self._lock:
            bids = self._select(bid_fid, {"Open"})
            for bid in bids:
                self._allocate(bid)
            return [bid["fid"] for bid in bids]

    def run(self, bid_fid: str | None = None, ssh_destination: str | Sequence[str] = SSH_DESTINATION) -> list[str]:
        """Set the instances of Allocated bids (Open ones are allocated first) to STATUS_RUNNING.

        Args:
            bid_fid: Only this bid; all Open and Allocated bids when ``None``.
            ssh_destination: ``"host:port"`` or ``"host"`` for every instance, or one per instance in order.

        Returns:
            The fids of the bids whose instances run.

        Raises:
            ValueError: ``bid_fid`` is unknown or neither Open nor Allocated.
        """
        with self._lock:
            bids = self._select(bid_fid, {"Open", "Allocated"})
            for bid in bids:
                if bid["status"] == "Open":
                    self._allocate(bid)
                self._run(bid, ssh_destination)
            return [bid["fid"] for bid in bids]

    def preempt(self, bid_fid: str | None = None, *, complete: bool = False) -> list[str]:
        """Preempt Allocated bids: Preempting with STATUS_PREEMPTING instances (the grace period).

        Args:
            bid_fid: Only this bid; all matching bids when ``None``.
            complete: End the grace period instead (Allocated or Preempting bids): the instances become
                STATUS_PREEMPTED without an SSH destination, and the bid returns to Open without instances.

        Returns:
            The fids of the bids that moved.

        Raises:
            ValueError: ``bid_fid`` is unknown or in another status.
        """
        with self._lock:
            bids = self._select(bid_fid, {"Allocated", "Preempting"} if complete else {"Allocated"})
            for bid in bids:
                for fid in bid["instances"]:
                    instance = self._instances[fid]
                    instance["status"] = "STATUS_PREEMPTED" if complete else "STATUS_PREEMPTING"
                    if complete:
                        instance["ssh_destination"] = None
                bid["status"] = "Open" if complete else "Preempting"
                if complete:
                    bid["instances"] = []
            return [bid["fid"] for bid in bids]

    def auto_advance(self, polls: int | None, ssh_destination: str = SSH_DESTINATION) -> None:
        """Advance every bid one step (Open → Allocated → running instances) on each ``polls``-th poll of it.

        A poll of a bid is a GET of it, of its status, of a bid list that includes it (project and name filters,
        before the status filter), or of an instance list that names it in ``bid_fid_in`` (or lists its project).
        The step happens before that answer is built, so the ``polls``-th poll already sees it.

        Args:
            polls: Polls per step; ``None`` or ``0`` turns auto mode off.
            ssh_destination: The SSH destination of instances started this way.
        """
        if polls is not None and polls < 0:
            raise ValueError(f"polls must be positive, not {polls}")
        with self._lock:
            self._auto_polls, self._auto_ssh = polls or 0, ssh_destination
            self._polls.clear()

    def fail_next(self, method: str, path_prefix: str, kind: str, times: int = 1, *, detail: Any = None,
                  hang_s: float = 5.0) -> None:
        """Make the next ``times`` requests of ``method`` to a path starting with ``path_prefix`` fail.

        Kinds: ``"500"`` and ``"503"`` answer that status (plain text, as Starlette does) without applying the
        request; ``"apply_then_500"`` applies it, then answers 500; ``"apply_then_hang"`` applies it, then holds the
        connection ``hang_s`` seconds and closes it without an answer; ``"drop"`` closes the connection without
        applying or answering; ``"429"`` answers with ``Retry-After: 0``; ``"403_quota"`` answers 403 ``Quota
        exceeded for instance type ...``; ``"422"`` answers 422 with ``detail`` (a default list otherwise).
        Faults are checked in the order they were added, after authentication.

        Raises:
            ValueError: ``kind`` is not one of the above, or ``times`` is below 1.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; kinds: {', '.join(sorted(FAULT_KINDS))}")
        if times < 1:
            raise ValueError(f"times must be at least 1, not {times}")
        with self._lock:
            self._faults.append(_Fault(method.upper(), path_prefix, kind, times, detail, hang_s))

    # Lifecycle steps (the lock is held).

    def _select(self, bid_fid: str | None, statuses: set[str]) -> list[dict[str, Any]]:
        if bid_fid is None:
            return [bid for bid in self._ordered(self._bids.values()) if bid["status"] in statuses]
        bid = self._bids.get(bid_fid)
        if bid is None or bid["status"] not in statuses:
            found = "unknown" if bid is None else bid["status"]
            raise ValueError(f"bid {bid_fid} is {found}, not {' or '.join(sorted(statuses))}")
        return [bid]

    def _allocate(self, bid: dict[str, Any]) -> None:
        bid["status"] = "Allocated"
        for index in range(bid["instance_quantity"]):
            fid = _new_fid("inst")
            self._instances[fid] = {
                "fid": fid, "name": f"{bid['name']}-{index}", "project": bid["project"], "created_at": _now(),
                "created_by": USER_FID, "instance_type": bid["instance_type"], "region": bid["region"],
                "bid": bid["fid"], "reservation": None, "ssh_destination": None, "private_ip": None,
                "status": "STATUS_STARTING"}
            self._seq[fid] = len(self._seq)
            bid["instances"].append(fid)

    def _run(self, bid: dict[str, Any], ssh_destination: str | Sequence[str]) -> None:
        for index, fid in enumerate(bid["instances"]):
            instance = self._instances[fid]
            destination = ssh_destination if isinstance(ssh_destination, str) else ssh_destination[index]
            seq = self._seq[fid]
            instance.update(status="STATUS_RUNNING", ssh_destination=destination,
                            private_ip=instance["private_ip"] or f"10.0.{seq // 250}.{seq % 250 + 2}")

    def _polled(self, bids: list[dict[str, Any]]) -> None:
        if not self._auto_polls:
            return
        for bid in bids:
            self._polls[bid["fid"]] = count = self._polls.get(bid["fid"], 0) + 1
            if count % self._auto_polls:
                continue
            if bid["status"] == "Open":
                self._allocate(bid)
            elif bid["status"] == "Allocated":
                self._run(bid, self._auto_ssh)

    # Serving.

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        """Read one request from ``handler``, answer it (or not, for injected faults) and record it."""
        parts = urlsplit(handler.path)
        headers = {name.lower(): value for name, value in handler.headers.items()}
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            length = -1
        raw = handler.rfile.read(length) if 0 < length <= MAX_BODY else b""
        try:
            body = json.loads(raw) if raw else None
            broken = None
        except ValueError as exc:
            body, broken = None, exc
        call = _Call(handler.command, parts.path, parse_qs(parts.query, keep_blank_values=True), body, headers)
        record = RecordedRequest(call.method, call.path, call.query, body, headers, raw)
        with self._lock:
            self._requests.append(record)
            if not 0 <= length <= MAX_BODY:
                reply, fault = _Reply(413, {"detail": "Request body is missing a length or too large"}), None
            elif broken is not None:
                reply, fault = _Reply(422, {"detail": [_invalid(["body", getattr(broken, "pos", 0)],
                                                                 "JSON decode error", "json_invalid")]}), None
            else:
                reply, fault = self._answer(call)
            record.status = reply.status if reply is not None else None
        if fault is not None and fault.kind == "apply_then_hang":
            self._stopping.wait(fault.hang_s)
        if reply is None or reply.status == 413:
            # Without an answer, or with an unread body, the connection cannot carry another request.
            handler.close_connection = True
        if reply is None:
            return
        payload = reply.payload()
        try:
            handler.send_response(reply.status)
            for name, value in reply.headers.items():
                handler.send_header(name, value)
            if reply.status != 204:
                handler.send_header("Content-Type", "text/plain" if reply.text is not None else "application/json")
                handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True

    def _answer(self, call: _Call) -> tuple[_Reply | None, _Fault | None]:
        """Authenticate, apply a pending fault and route ``call``; ``None`` means close without answering."""
        if call.headers.get("authorization") != f"Bearer {self.key}":
            return _Reply(401, {"detail": "Invalid API key"}, {"WWW-Authenticate": "Bearer"}), None
        fault = next((f for f in self._faults if f.method == call.method and call.path.startswith(f.path_prefix)),
                     None)
        if fault is not None:
            fault.times -= 1
            if not fault.times:
                self._faults.remove(fault)
            early = self._fault_reply(fault, call)
            if early is not None or fault.kind == "drop":
                return early, fault
        reply = self._route(call)
        if fault is None:
            return reply, None
        return (_Reply(500, text="Internal Server Error") if fault.kind == "apply_then_500" else None), fault

    def _fault_reply(self, fault: _Fault, call: _Call) -> _Reply | None:
        """The answer of a fault that does not apply the request; ``None`` for the others."""
        if fault.kind == "500":
            return _Reply(500, text="Internal Server Error")
        if fault.kind == "503":
            return _Reply(503, text="Service Unavailable")
        if fault.kind == "429":
            return _Reply(429, {"detail": fault.detail or "Too many requests"}, {"Retry-After": "0"})
        if fault.kind == "403_quota":
            it = call.body.get("instance_type") if isinstance(call.body, dict) else None
            label = self._offers[it]["name"] if it in self._offers else (it or "this instance type")
            return _Reply(403, {"detail": fault.detail or f"Quota exceeded for instance type {label}"})
        if fault.kind == "422":
            return _Reply(422, {"detail": fault.detail or [_invalid(["body"], "injected validation error")]})
        return None

    def _route(self, call: _Call) -> _Reply:
        path_known = False
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(call.path)
            if match is None:
                continue
            path_known = True
            if method == call.method:
                call.params = match.groupdict()
                try:
                    return handler(call)
                except ApiError as error:
                    return _Reply(error.status, {"detail": error.detail})
                except Exception:
                    # A bug in the fake reaches the test as a 500, with its traceback on stderr.
                    traceback.print_exc()
                    return _Reply(500, text="Internal Server Error (fake_mithril bug, see stderr)")
        return _Reply(405, {"detail": "Method Not Allowed"}) if path_known else _Reply(404, {"detail": "Not Found"})

    # Shared pieces of handlers (the lock is held).

    def _ordered(self, records: Any) -> list[dict[str, Any]]:
        return sorted(records, key=lambda record: self._seq[record["fid"]])

    def _name_of(self, bid: dict[str, Any]) -> str | None:
        return next((name for name, fid in self.projects.items() if fid == bid["project"]), None)

    def _project(self, fid: str) -> str:
        if fid not in self.projects.values():
            raise ApiError(404, "Project not found")
        return fid

    def _page(self, call: _Call, records: list[dict[str, Any]]) -> _Reply:
        """One page of ``records`` by creation time: ``{data, next_cursor}``; the cursor is the last item's place."""
        limit_text = call.one("limit") or "100"
        if not re.fullmatch(r"[0-9]{1,3}", limit_text) or not 1 <= int(limit_text) <= 100:
            raise ApiError(422, [_invalid(["query", "limit"], "Input should be between 1 and 100", "less_than_equal")])
        if call.one("sort_by") not in (None, "created_at"):
            raise ApiError(422, [_invalid(["query", "sort_by"], "this fake sorts by 'created_at' only")])
        direction = call.one("sort_dir") or "asc"
        if direction not in ("asc", "desc"):
            raise ApiError(422, [_invalid(["query", "sort_dir"], "Input should be 'asc' or 'desc'", "enum")])
        ordered = self._ordered(records)
        if direction == "desc":
            ordered.reverse()
        cursor = call.one("next_cursor")
        if cursor:
            try:
                after = int(base64.urlsafe_b64decode(cursor.encode()).decode().removeprefix("after:"))
            except ValueError:
                raise ApiError(422, [_invalid(["query", "next_cursor"], "Invalid cursor")]) from None
            ordered = [r for r in ordered
                       if (self._seq[r["fid"]] > after if direction == "asc" else self._seq[r["fid"]] < after)]
        size = min(int(limit_text), self.page_size)
        page, rest = ordered[:size], ordered[size:]
        cursor = base64.urlsafe_b64encode(f"after:{self._seq[page[-1]['fid']]}".encode()).decode() if rest else None
        return _Reply(200, {"data": copy.deepcopy(page), "next_cursor": cursor})

    def _price(self, text: str, type_fid: str, loc: list[str | int]) -> tuple[int | None, list[dict[str, Any]]]:
        cents = _cents(text)
        if cents is None:
            return None, [_invalid(loc, f"Invalid limit price {text!r}: expected a dollar amount like '$25.60'")]
        minimum = self.min_prices.get(self._offers[type_fid]["name"]) if type_fid in self._offers else None
        if minimum is not None and cents < (_cents(minimum) or 0):
            return None, [_invalid(loc, f"Limit price {_dollars(cents)} is below the minimum price {minimum} "
                                        "for this instance type")]
        return cents, []

    def _volume_errors(self, fids: list[str], project: str, region: str, loc: list[str | int]) -> list[dict[str, Any]]:
        errors = []
        for index, fid in enumerate(fids):
            volume = self._volumes.get(fid)
            if volume is None or volume["project"] != project or volume["deleted_at"]:
                errors.append(_invalid([*loc, index], f"Volume {fid!r} not found in project {project}"))
            elif volume["region"] != region:
                errors.append(_invalid([*loc, index], f"Volume {fid!r} is in {volume['region']}, not {region}"))
        return errors

    def _idempotent_create(self, call: _Call, create: Callable[[_Call], _Reply]) -> _Reply:
        """Run ``create`` once per ``Idempotency-Key``; a repeat replays the first answer (the IETF draft's rule)."""
        key = call.headers.get("idempotency-key")
        if key is None:
            return create(call)
        seen = self._idempotent.get((call.path, key))
        if seen is not None:
            if seen[0] != call.body:
                raise ApiError(422, "Idempotency-Key was already used with a different request body")
            return copy.deepcopy(seen[1])
        reply = create(call)
        if reply.status < 400:
            self._idempotent[(call.path, key)] = (copy.deepcopy(call.body), copy.deepcopy(reply))
        return reply

    @staticmethod
    def _volume_record(fid: str, name: str, project: str, interface: str, region: str, size: int,
                       created_at: str) -> dict[str, Any]:
        return {"fid": fid, "name": name, "region": region, "created_at": created_at, "deleted_at": None,
                "capacity_gb": size, "project": project, "interface": interface, "bids": [], "reservations": [],
                "attachments": {}}

    def _volume_out(self, volume: dict[str, Any]) -> dict[str, Any]:
        bids = [b["fid"] for b in self._ordered(self._bids.values())
                if b["status"] in LIVE_STATUSES and volume["fid"] in b["launch_specification"]["volumes"]]
        return {**copy.deepcopy(volume), "bids": bids}

    def _live_bid(self, fid: str) -> dict[str, Any]:
        bid = self._bids.get(fid)
        if bid is None or bid["status"] == "Terminated":
            raise ApiError(404, "Bid not found")
        return bid

    # Route handlers (the lock is held).

    def _get_me(self, call: _Call) -> _Reply:
        return _Reply(200, {"fid": USER_FID, "email": "dev@example.com", "user_name": "dev",
                            "organization_role": "member"})

    def _list_projects(self, call: _Call) -> _Reply:
        return _Reply(200, [{"fid": fid, "name": name, "created_at": SEED_TIME} for name, fid in self.projects.items()])

    def _list_instance_types(self, call: _Call) -> _Reply:
        rows = [{"fid": fid, "name": offer["name"], **INSTANCE_TYPES[offer["name"]]}
                for fid, offer in self._offers.items()]
        return _Reply(200, sorted(rows, key=lambda row: (row["name"], row["fid"])))

    def _list_availability(self, call: _Call) -> _Reply:
        return _Reply(200, [dict(offer["row"]) for offer in self._offers.values()])

    def _list_ssh_keys(self, call: _Call) -> _Reply:
        project = self._project(call.one("project", required=True) or "")
        return _Reply(200, [dict(key) for key in self._ssh_keys.values() if key["project"] == project])

    def _get_pricing(self, call: _Call) -> _Reply:
        fid, region = call.one("instance_type", required=True), call.one("region", required=True)
        offer = self._offers.get(fid or "")
        if offer is None or offer["row"]["region"] != region:
            raise ApiError(422, [_invalid(["query", "instance_type"],
                                          f"Instance type {fid!r} is not offered in {region}")])
        row, lowest = offer["row"], offer["row"]["lowest_allocated_price"]
        spot = _cents(row["last_instance_price"]) or 0
        return _Reply(200, {"spot_price_cents": spot,
                            "reserved_price_cents": round(INSTANCE_TYPES[offer["name"]]["hourly_price"] * 100),
                            "minimum_price_cents": _cents(self.min_prices.get(offer["name"]) or "-"),
                            "lowest_allocated_bid_cents": None if lowest is None else _cents(lowest),
                            "dynamic_win_price_cents": spot + 1, "available_capacity": offer["capacity"],
                            "total_capacity": offer["total_capacity"]})

    def _create_bid(self, call: _Call) -> _Reply:
        body = call.json_body()
        _check_schema(BID_SCHEMA, body)
        return self._idempotent_create(call, self._create_bid_now)

    def _create_bid_now(self, call: _Call) -> _Reply:
        body = call.body
        project, region, type_fid = self._project(body["project"]), body["region"], body["instance_type"]
        launch = body["launch_specification"]
        errors = []
        if region not in self.regions:
            errors.append(_invalid(["body", "region"], f"Region {region!r} does not exist"))
        offer = self._offers.get(type_fid)
        if offer is None or offer["row"]["region"] != region:
            errors.append(_invalid(["body", "instance_type"], f"Instance type {type_fid!r} is not offered in {region}"))
        cents, price_errors = self._price(body["limit_price"], type_fid, ["body", "limit_price"])
        errors += price_errors
        if body["instance_quantity"] < 1:
            errors.append(_invalid(["body", "instance_quantity"], "Input should be greater than or equal to 1",
                                   "greater_than_equal"))
        if not _BID_NAME.fullmatch(body["name"]):
            errors.append(_invalid(["body", "name"], "Invalid name"))
        for index, key in enumerate(launch["ssh_keys"]):
            if self._ssh_keys.get(key, {}).get("project") != project:
                errors.append(_invalid(["body", "launch_specification", "ssh_keys", index],
                                       f"SSH key {key!r} not found in project {project}"))
        errors += self._volume_errors(launch["volumes"], project, region, ["body", "launch_specification", "volumes"])
        if errors:
            raise ApiError(422, errors)
        fid = _new_fid("bid")
        self._bids[fid] = {
            "fid": fid, "name": body["name"], "project": project, "created_by": USER_FID, "created_at": _now(),
            "deactivated_at": None, "limit_price": _dollars(cents or 0),
            "instance_quantity": int(body["instance_quantity"]),
            "instance_type": type_fid, "region": region, "instances": [],
            "launch_specification": {"startup_script": None, "image_version": None, "kubernetes_cluster": None,
                                     "memory_gb": None, **copy.deepcopy(launch)},
            "status": "Open"}
        self._seq[fid] = len(self._seq)
        return _Reply(201, copy.deepcopy(self._bids[fid]))

    def _list_bids(self, call: _Call) -> _Reply:
        project = self._project(call.one("project", required=True) or "")
        name, status = call.one("name"), call.one("status")
        if status is not None and status not in BID_STATUSES:
            raise ApiError(422, [_invalid(["query", "status"], "Input should be one of "
                                          + ", ".join(sorted(BID_STATUSES)), "enum")])
        bids = [b for b in self._bids.values() if b["project"] == project and name in (None, b["name"])]
        self._polled(self._ordered(bids))
        return self._page(call, [b for b in bids if status in (None, b["status"])])

    def _get_bid(self, call: _Call) -> _Reply:
        bid = self._bids.get(call.params["fid"])
        if bid is None:
            raise ApiError(404, "Bid not found")
        self._polled([bid])
        return _Reply(200, copy.deepcopy(bid))

    def _get_bid_status(self, call: _Call) -> _Reply:
        bid = self._get_bid(call).body
        return _Reply(200, {"bid_fid": bid["fid"], "status": bid["status"]})

    def _update_bid(self, call: _Call) -> _Reply:
        bid, body = self._live_bid(call.params["fid"]), call.json_body()
        _check_schema(UPDATE_BID_SCHEMA, body)
        cents, errors = None, []
        if "limit_price" in body:
            cents, errors = self._price(body["limit_price"], bid["instance_type"], ["body", "limit_price"])
        if "volumes" in body:
            errors += self._volume_errors(body["volumes"], bid["project"], bid["region"], ["body", "volumes"])
        if errors:
            raise ApiError(422, errors)
        if cents is not None:
            bid["limit_price"] = _dollars(cents)
        for key in ("volumes", "memory_gb"):
            if key in body:
                bid["launch_specification"][key] = copy.deepcopy(body[key])
        if body.get("paused") is True and bid["status"] in ("Open", "Allocated"):
            self._resume_status[bid["fid"]], bid["status"] = bid["status"], "Paused"
            for fid in bid["instances"]:
                self._instances[fid].update(status="STATUS_PAUSED", ssh_destination=None)
        elif body.get("paused") is False and bid["status"] == "Paused":
            bid["status"] = self._resume_status.pop(bid["fid"], "Open")
            for fid in bid["instances"]:
                self._instances[fid]["status"] = "STATUS_STARTING"
        return _Reply(200, copy.deepcopy(bid))

    def _delete_bid(self, call: _Call) -> _Reply:
        bid = self._live_bid(call.params["fid"])
        bid.update(status="Terminated", deactivated_at=_now())
        for fid in bid["instances"]:
            self._instances[fid].update(status="STATUS_TERMINATED", ssh_destination=None)
        return _Reply(204)

    def _list_instances(self, call: _Call) -> _Reply:
        project = self._project(call.one("project", required=True) or "")
        wanted = {fid for spelling in ("bid_fid_in", "bid_fid_in[]")
                  for value in call.query.get(spelling, []) for fid in value.split(",") if fid}
        bids = [b for b in self._bids.values() if b["project"] == project and (not wanted or b["fid"] in wanted)]
        self._polled(self._ordered(bids))
        return self._page(call, [i for i in self._instances.values()
                                 if i["project"] == project and (not wanted or i["bid"] in wanted)])

    def _list_volumes(self, call: _Call) -> _Reply:
        project = self._project(call.one("project", required=True) or "")
        region, deleted = call.one("region"), call.one("include_deleted") == "true"
        return _Reply(200, [self._volume_out(v) for v in self._volumes.values() if v["project"] == project
                            and region in (None, v["region"]) and (deleted or not v["deleted_at"])])

    def _create_volume(self, call: _Call) -> _Reply:
        _check_schema(CREATE_VOLUME_SCHEMA, call.json_body())
        return self._idempotent_create(call, self._create_volume_now)

    def _create_volume_now(self, call: _Call) -> _Reply:
        body = call.body
        project, errors = self._project(body["project"]), []
        if not _VOLUME_NAME.fullmatch(body["name"]):
            errors.append(_invalid(["body", "name"], "String should match pattern '^[a-z]([-a-z0-9]*[a-z0-9])?$'",
                                   "string_pattern_mismatch"))
        if body["region"] not in self.regions:
            errors.append(_invalid(["body", "region"], f"Region {body['region']!r} does not exist"))
        if errors:
            raise ApiError(422, errors)
        fid = _new_fid("vol")
        self._volumes[fid] = self._volume_record(fid, body["name"], project, body["disk_interface"], body["region"],
                                                 int(body["size_gb"]), _now())
        return _Reply(201, self._volume_out(self._volumes[fid]))

    def _delete_volume(self, call: _Call) -> _Reply:
        volume = self._volumes.get(call.params["fid"])
        if volume is None or volume["deleted_at"]:
            raise ApiError(404, "Volume not found")
        users = self._volume_out(volume)["bids"]
        if users:
            raise ApiError(409, f"Volume {volume['fid']} is attached to bid {', '.join(users)}")
        volume["deleted_at"] = _now()
        return _Reply(204)


def _handler_class(fake: FakeMithril) -> type[BaseHTTPRequestHandler]:
    """A request handler class that hands every request to ``fake``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body leave in two writes; with Nagle on, each answer would wait for a delayed ACK (~40 ms).
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            fake._serve(self)

        do_POST = do_PATCH = do_DELETE = do_PUT = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            """Keep test output quiet; :attr:`FakeMithril.requests` is the log."""

    return Handler
