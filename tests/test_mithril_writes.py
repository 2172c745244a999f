"""The Mithril client's writes (bids, volumes) and the compute endpoints, against a real local HTTP server.

The server records every request it reads (method, path, query, headers, body) and answers from a script per
method and path, or reads the request and then hangs or drops the connection, so what reached the server is
asserted on the server side: a POST that may have been applied is never sent twice. Sleeps are recorded, never
slept.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from flowc.providers.mithril.api import compute
from flowc.providers.mithril.api.client import ApiClient
from flowc.providers.mithril.api.compute import (
    cancel_bid,
    create_bid,
    create_volume,
    delete_volume,
    get_bid,
    idempotency_key,
    list_bids,
    list_instances,
    list_projects,
    list_ssh_keys,
    list_volumes,
    update_bid,
)
from flowc.providers.mithril.api.errors import (
    AuthError,
    CircuitOpen,
    Conflict,
    MalformedResponse,
    MithrilApiError,
    NetworkError,
    NotFound,
    PriceTooLow,
    QuotaExceeded,
    RateLimited,
    ServerError,
    ValidationFailed,
)

from conftest import serve_http

KEY = "fkey_WRITESECRET_0123456789abcdef"
SCRIPT_MARKER = "echo TOP-SECRET-STARTUP-LINE"
BIDS = "/v2/spot/bids"
BID_FID = "bid_Zx91LmQ2wE7rT5yU"

BID_REQUEST = {
    "project": "proj_8Kq2nLw0ZbT4xYcd",
    "region": "us-central2-a",
    "instance_type": "it_5ECSoHQjLBzrp5YM",
    "limit_price": "$24.00",
    "instance_quantity": 2,
    "name": "llama-ft-3fa9c1",
    "launch_specification": {
        "ssh_keys": ["sshkey_Hc81mPq0aZ3vR2tY"],
        "volumes": ["vol_Q7w2eR9tY1uI3oP5"],
        "startup_script": f"#!/bin/bash\nset -euo pipefail\n{SCRIPT_MARKER}\n",
        "image_version": None,
        "kubernetes_cluster": None,
        "memory_gb": None,
    },
    "notification_email": None,
}

BID = {
    "fid": BID_FID,
    "name": "llama-ft-3fa9c1",
    "project": "proj_8Kq2nLw0ZbT4xYcd",
    "created_by": "user_kfV4CCaapLiqCNlv",
    "created_at": "2025-09-14T17:02:11Z",
    "deactivated_at": None,
    "limit_price": "$24.00",
    "instance_quantity": 2,
    "instance_type": "it_5ECSoHQjLBzrp5YM",
    "region": "us-central2-a",
    "instances": [],
    "launch_specification": BID_REQUEST["launch_specification"],
    "status": "Open",
    "some_future_field": {"nested": 1},
}

INSTANCE = {"fid": "inst_A1", "name": "llama-ft-3fa9c1-0", "project": "proj_8Kq2nLw0ZbT4xYcd",
            "created_at": "2025-09-14T17:05:00Z", "instance_type": "it_5ECSoHQjLBzrp5YM", "region": "us-central2-a",
            "bid": BID_FID, "status": "STATUS_RUNNING", "ssh_destination": "203.0.113.7:2222",
            "private_ip": "10.0.0.2", "reservation": None}

VOLUME = {"fid": "vol_Q7w2eR9tY1uI3oP5", "name": "data", "region": "us-central2-a", "capacity_gb": 500,
          "interface": "Block", "project": "proj_8Kq2nLw0ZbT4xYcd", "created_at": "2025-09-14T16:00:00Z",
          "deleted_at": None, "bids": [BID_FID], "reservations": [], "attachments": {}}


@dataclass
class Reply:
    """One scripted answer, or an ``action``: ``hang`` (read the request, never answer) or ``drop`` (close)."""

    body: Any = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    action: str = "answer"


@dataclass
class Seen:
    """One request as the server read it, body included."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    raw: bytes

    @property
    def body(self) -> Any:
        return json.loads(self.raw) if self.raw else None


Script = Reply | Callable[[Seen], Reply]


class FakeMithril:
    """Scripted replies per (method, path); the last reply of a script repeats. Unscripted requests answer 404."""

    def __init__(self) -> None:
        """Start with no routes and no requests."""
        self.url = ""
        self.routes: dict[tuple[str, str], list[Script]] = {}
        self.requests: list[Seen] = []
        self.release = threading.Event()  # set at teardown, so hanging handlers end
        self._lock = threading.Lock()

    def route(self, method: str, path: str, *replies: Script) -> None:
        self.routes[(method, path)] = list(replies)

    def hits(self, method: str, path: str) -> int:
        return sum(1 for r in self.requests if (r.method, r.path) == (method, path))

    def next_reply(self, seen: Seen) -> Reply:
        with self._lock:
            self.requests.append(seen)
            script = self.routes.get((seen.method, seen.path))
            if not script:
                return Reply({"detail": "Not Found"}, status=404)
            reply = script.pop(0) if len(script) > 1 else script[0]
        return reply(seen) if callable(reply) else reply


def _handler(fake: FakeMithril) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            seen = Seen(self.command, parts.path, parse_qs(parts.query),
                        {k.lower(): v for k, v in self.headers.items()}, raw)
            reply = fake.next_reply(seen)
            if reply.action == "hang":
                fake.release.wait(10)
                self.close_connection = True
                return
            if reply.action == "drop":
                self.close_connection = True
                return
            payload = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
            try:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.status != 204:
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if reply.status != 204:
                    self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up and left

        do_GET = do_POST = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def mithril() -> Iterator[FakeMithril]:
    fake = FakeMithril()
    with serve_http(_handler(fake)) as fake.url:
        yield fake
        fake.release.set()  # hanging answers end before the server stops


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MITHRIL_API_URL", raising=False)
    monkeypatch.delenv("MITHRIL_API_KEY", raising=False)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(mithril: FakeMithril, sleeps: list[float]) -> Iterator[ApiClient]:
    with ApiClient(mithril.url, KEY, timeout=2.0, retries=3, backoff_s=0.01, sleep=sleeps.append) as api:
        yield api


def assert_no_key(*texts: str) -> None:
    for text in texts:
        assert KEY not in text and KEY[5:] not in text, text


# Writes: what is sent, and what is retried.


def test_create_bid_sends_json_body_and_idempotency_key(client: ApiClient, mithril: FakeMithril) -> None:
    mithril.route("POST", BIDS, Reply(BID, status=201))
    key = idempotency_key(BID_REQUEST["project"], BID_REQUEST)
    bid = create_bid(client, BID_REQUEST, key)
    assert (bid.fid, bid.status, bid.region, bid.instances) == (BID_FID, "Open", "us-central2-a", [])
    assert (bid.limit_price, bid.limit_price_dollars) == ("$24.00", 24.0)
    assert bid.created_at.isoformat() == "2025-09-14T17:02:11+00:00" and bid.deactivated_at is None
    assert bid.launch_specification["startup_script"].endswith(SCRIPT_MARKER + "\n")
    [sent] = mithril.requests
    assert (sent.method, sent.path, sent.body) == ("POST", BIDS, BID_REQUEST)
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["idempotency-key"] == key and key.startswith("flowc-") and len(key) == 38
    assert sent.headers["authorization"] == f"Bearer {KEY}"


def test_post_500_is_raised_at_once_with_outcome_unknown(client: ApiClient, mithril: FakeMithril,
                                                         sleeps: list[float]) -> None:
    mithril.route("POST", BIDS, Reply({"detail": "internal error"}, status=500), Reply(BID, status=201))
    with pytest.raises(ServerError) as info:
        create_bid(client, BID_REQUEST, "flowc-k1")
    assert info.value.outcome_unknown and info.value.status == 500
    assert "may have applied it" in str(info.value) and "before sending it again" in (info.value.help or "")
    assert mithril.hits("POST", BIDS) == 1 and sleeps == []


def test_post_timeout_after_sending_is_not_retried(mithril: FakeMithril, sleeps: list[float]) -> None:
    mithril.route("POST", BIDS, Reply(action="hang"))
    with ApiClient(mithril.url, KEY, timeout=0.3, retries=3, backoff_s=0.01, sleep=sleeps.append) as api:
        with pytest.raises(NetworkError) as info:
            create_bid(api, BID_REQUEST, "flowc-k2")
    assert info.value.outcome_unknown and "timed out on POST /v2/spot/bids" in str(info.value)
    assert "may have applied it" in str(info.value)
    assert mithril.hits("POST", BIDS) == 1 and sleeps == []
    assert mithril.requests[0].body == BID_REQUEST  # it did reach the server whole


def test_post_connection_dropped_after_sending_is_not_retried(client: ApiClient, mithril: FakeMithril,
                                                              sleeps: list[float]) -> None:
    mithril.route("POST", BIDS, Reply(action="drop"), Reply(BID, status=201))
    with pytest.raises(NetworkError) as info:
        create_bid(client, BID_REQUEST, "flowc-k3")
    assert info.value.outcome_unknown and "dropped the connection on POST" in str(info.value)
    assert mithril.hits("POST", BIDS) == 1 and sleeps == []


def test_post_429_is_retried_with_the_same_key_and_body(client: ApiClient, mithril: FakeMithril,
                                                        sleeps: list[float]) -> None:
    mithril.route("POST", BIDS, Reply({"detail": "slow down"}, 429, {"Retry-After": "0"}), Reply(BID, status=201))
    assert create_bid(client, BID_REQUEST, "flowc-same").fid == BID_FID
    first, second = mithril.requests
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"] == "flowc-same"
    assert first.raw == second.raw and sleeps == [0.0]


def test_post_without_a_connection_is_retried_and_known_not_applied(sleeps: list[float]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with ApiClient(f"http://127.0.0.1:{port}", KEY, retries=2, backoff_s=0.01, sleep=sleeps.append) as api:
        with pytest.raises(NetworkError) as info:
            create_bid(api, BID_REQUEST, "flowc-k4")
    assert not info.value.outcome_unknown and "cannot reach mithril api" in str(info.value)
    assert len(sleeps) == 2


def test_patch_503_is_retried(client: ApiClient, mithril: FakeMithril, sleeps: list[float]) -> None:
    path = f"{BIDS}/{BID_FID}"
    mithril.route("PATCH", path, Reply({"detail": "unavailable"}, 503), Reply({**BID, "limit_price": "$30.00"}))
    bid = update_bid(client, BID_FID, {"limit_price": "$30.00"})
    assert bid.limit_price_dollars == 30.0 and mithril.hits("PATCH", path) == 2 and len(sleeps) == 1
    assert [r.body for r in mithril.requests] == [{"limit_price": "$30.00"}] * 2


def test_patch_503_every_time_ends_with_outcome_unknown(client: ApiClient, mithril: FakeMithril) -> None:
    path = f"{BIDS}/{BID_FID}"
    mithril.route("PATCH", path, Reply({"detail": "unavailable"}, 503))
    with pytest.raises(ServerError) as info:
        update_bid(client, BID_FID, {"paused": True})
    assert info.value.outcome_unknown and mithril.hits("PATCH", path) == 4


def test_an_earlier_unknown_attempt_is_kept_in_the_final_error(client: ApiClient, mithril: FakeMithril) -> None:
    path = f"{BIDS}/{BID_FID}"
    detail = [{"loc": ["body", "paused"], "msg": "bid is terminated", "type": "value_error"}]
    mithril.route("PATCH", path, Reply(None, 502), Reply({"detail": detail}, 422))
    with pytest.raises(ValidationFailed) as info:
        update_bid(client, BID_FID, {"paused": True})
    assert info.value.outcome_unknown and "an earlier attempt may have been applied" in str(info.value)


def test_get_errors_never_claim_an_unknown_outcome(client: ApiClient, mithril: FakeMithril) -> None:
    mithril.route("GET", f"{BIDS}/{BID_FID}", Reply(None, 500))
    with pytest.raises(ServerError) as info:
        get_bid(client, BID_FID)
    assert not info.value.outcome_unknown and "may have applied" not in str(info.value)
    assert mithril.hits("GET", f"{BIDS}/{BID_FID}") == 4


def test_cancel_bid_is_true_on_204_and_false_on_404(client: ApiClient, mithril: FakeMithril) -> None:
    mithril.route("DELETE", f"{BIDS}/{BID_FID}", Reply(status=204))
    assert cancel_bid(client, BID_FID) is True
    assert cancel_bid(client, "bid_gone") is False  # unscripted: 404
    assert [(r.method, r.path, r.raw) for r in mithril.requests] == [
        ("DELETE", f"{BIDS}/{BID_FID}", b""), ("DELETE", f"{BIDS}/bid_gone", b"")]
    assert "content-type" not in mithril.requests[0].headers


def test_delete_retried_after_503_finds_the_bid_gone(client: ApiClient, mithril: FakeMithril) -> None:
    mithril.route("DELETE", f"{BIDS}/{BID_FID}", Reply(None, 503), Reply({"detail": "no such bid"}, 404))
    assert cancel_bid(client, BID_FID) is False
    assert mithril.hits("DELETE", f"{BIDS}/{BID_FID}") == 2


def test_circuit_breaker_counts_write_failures(mithril: FakeMithril, sleeps: list[float]) -> None:
    mithril.route("POST", BIDS, Reply(None, 500))
    with ApiClient(mithril.url, KEY, retries=3, sleep=sleeps.append, breaker_threshold=2) as api:
        for _ in range(2):
            with pytest.raises(ServerError):
                create_bid(api, BID_REQUEST, "flowc-k5")
        with pytest.raises(CircuitOpen):
            create_bid(api, BID_REQUEST, "flowc-k5")
    assert mithril.hits("POST", BIDS) == 2


def test_unusable_requests_are_refused_before_sending(client: ApiClient, mithril: FakeMithril) -> None:
    with pytest.raises(ValueError, match="idempotency key"):
        client.send_json("POST", BIDS, body={}, idempotency_key="flowc-1\r\nX-Evil: 1")
    with pytest.raises(ValueError, match="method"):
        client.send_json("PUT", BIDS, body={})
    with pytest.raises(ValueError):
        client.send_json("POST", BIDS, body={"limit_price": float("nan")})
    for fid in ("..", "bid_1/../../v2/volumes", "bid_1?x=1", "", "bid_1\n"):
        with pytest.raises(ValueError, match="not a mithril id"):
            cancel_bid(client, fid)
    with pytest.raises(ValueError, match="interface"):
        create_volume(client, project="proj_1", name="data", region="r", size_gb=10,
                      interface="block",  # type: ignore[arg-type]
                      idempotency_key="flowc-v")
    with pytest.raises(ValueError, match="size"):
        create_volume(client, project="proj_1", name="data", region="r", size_gb=0, interface="File",
                      idempotency_key="flowc-v")
    assert mithril.requests == []


# Error classes a caller can act on.


def test_422_keeps_the_detail_list_for_mapping_back(client: ApiClient, mithril: FakeMithril) -> None:
    detail = [{"loc": ["body", "launch_specification", "ssh_keys"], "msg": "field required", "type": "missing"},
              {"loc": ["body", "name"], "msg": "Invalid name", "type": "value_error"}]
    mithril.route("POST", BIDS, Reply({"detail": detail}, 422))
    with pytest.raises(ValidationFailed) as info:
        create_bid(client, BID_REQUEST, "flowc-k6")
    assert type(info.value) is ValidationFailed and not info.value.outcome_unknown
    assert [item["loc"] for item in info.value.detail] == [["body", "launch_specification", "ssh_keys"],
                                                           ["body", "name"]]
    assert "body.launch_specification.ssh_keys: field required" in str(info.value)
    assert mithril.hits("POST", BIDS) == 1


@pytest.mark.parametrize("item", [
    {"loc": ["body", "limit_price"], "msg": "must be at least $8.00", "type": "value_error"},
    {"loc": ["body"], "msg": "Bid price below minimum", "type": "value_error"},
    {"loc": ["body"], "msg": "Insufficient bid for the requested capacity", "type": "value_error"},
])
def test_price_422_is_price_too_low(client: ApiClient, mithril: FakeMithril, item: dict) -> None:
    mithril.route("POST", BIDS, Reply({"detail": [item]}, 422))
    with pytest.raises(PriceTooLow) as info:
        create_bid(client, BID_REQUEST, "flowc-k7")
    assert isinstance(info.value, ValidationFailed) and info.value.detail == [item]
    assert "limit price" in (info.value.help or "")


def test_quota_403_is_quota_exceeded(client: ApiClient, mithril: FakeMithril) -> None:
    mithril.route("POST", BIDS, Reply({"detail": "Spot quota exceeded for it_5ECSoHQjLBzrp5YM"}, 403))
    with pytest.raises(QuotaExceeded) as info:
        create_bid(client, BID_REQUEST, "flowc-k8")
    assert isinstance(info.value, AuthError) and info.value.status == 403
    assert "app.mithril.ai/instances/quotas" in (info.value.help or "")
    mithril.route("POST", BIDS, Reply({"detail": "not a member of project"}, 403))
    with pytest.raises(AuthError) as plain:
        create_bid(client, BID_REQUEST, "flowc-k8")
    assert type(plain.value) is AuthError


def test_409_is_conflict(client: ApiClient, mithril: FakeMithril) -> None:
    mithril.route("POST", "/v2/volumes", Reply({"detail": "volume name already in use"}, 409))
    with pytest.raises(Conflict) as info:
        create_volume(client, project="proj_1", name="data", region="us-central2-a", size_gb=100,
                      interface="Block", idempotency_key="flowc-v1")
    assert "already in use" in str(info.value) and info.value.status == 409


def test_429_that_never_ends_is_rate_limited_for_a_post(client: ApiClient, mithril: FakeMithril) -> None:
    mithril.route("POST", BIDS, Reply(None, 429, {"Retry-After": "0"}))
    with pytest.raises(RateLimited) as info:
        create_bid(client, BID_REQUEST, "flowc-k9")
    assert not info.value.outcome_unknown and mithril.hits("POST", BIDS) == 4


# Models and malformed bodies.


MALFORMED_BIDS = [
    {**BID, "limit_price": "cheap"},
    {**BID, "limit_price": "$nan"},
    {**BID, "limit_price": "-$1"},
    {**BID, "limit_price": ""},
    {**BID, "limit_price": 24.0},
    {k: v for k, v in BID.items() if k != "status"},
    {k: v for k, v in BID.items() if k != "created_at"},
    {**BID, "created_at": "yesterday"},
    {**BID, "created_at": "9999-12-31T23:59:59-05:00"},
    {**BID, "instances": "inst_A1"},
    {**BID, "instance_quantity": -1},
    {**BID, "instance_quantity": 10**20},
    {**BID, "name": "a\nb"},
    {**BID, "region": "r" * 10_000},
    {**BID, "launch_specification": ["x"]},
    [BID],
    "a bid",
    None,
]


@pytest.mark.parametrize("body", MALFORMED_BIDS, ids=range(len(MALFORMED_BIDS)))
def test_malformed_bid_bodies_are_malformed_response(client: ApiClient, mithril: FakeMithril, body: Any) -> None:
    mithril.route("GET", f"{BIDS}/{BID_FID}", Reply(body))
    mithril.route("POST", BIDS, Reply(body, status=201))
    mithril.route("GET", BIDS, Reply({"data": [body], "next_cursor": None}))
    for call in (lambda: get_bid(client, BID_FID), lambda: create_bid(client, BID_REQUEST, "flowc-m"),
                 lambda: list_bids(client, "proj_1")):
        with pytest.raises(MalformedResponse) as info:
            call()
        message = info.value.message
        assert message.startswith("mithril api sent an unexpected shape on ") and len(message) < 400
        assert all(c.isprintable() for c in message)


def test_malformed_answer_to_a_create_says_it_was_probably_created(client: ApiClient, mithril: FakeMithril) -> None:
    mithril.route("POST", BIDS, Reply({"fid": BID_FID}, status=201))
    with pytest.raises(MalformedResponse) as info:
        create_bid(client, BID_REQUEST, "flowc-m1")
    assert "probably created" in (info.value.help or "") and mithril.hits("POST", BIDS) == 1
    mithril.route("POST", BIDS, Reply(raw=b"<html>ok</html>", status=201))
    with pytest.raises(MalformedResponse) as info:
        create_bid(client, BID_REQUEST, "flowc-m1")
    assert "the POST was applied" in str(info.value)


def test_other_models_validate_and_ignore_extra_fields(client: ApiClient, mithril: FakeMithril) -> None:
    mithril.route("GET", "/v2/projects", Reply([{"fid": "proj_1", "name": "research", "created_at": "x"}]))
    mithril.route("GET", "/v2/ssh-keys", Reply([{"fid": "sshkey_1", "name": "laptop", "project": "proj_1",
                                                 "public_key": "ssh-ed25519 " + "A" * 500 + " me@host\n",
                                                 "required": True, "created_at": "2025-01-01T00:00:00Z"}]))
    mithril.route("GET", "/v2/volumes", Reply([VOLUME]))
    assert [(p.fid, p.name) for p in list_projects(client)] == [("proj_1", "research")]
    [key] = list_ssh_keys(client, "proj_1")
    assert key.required and key.public_key and key.public_key.startswith("ssh-ed25519 ")
    [volume] = list_volumes(client, "proj_1", region="us-central2-a")
    assert (volume.fid, volume.capacity_gb, volume.interface, volume.bids) == (
        "vol_Q7w2eR9tY1uI3oP5", 500, "Block", [BID_FID])
    assert [r.query for r in mithril.requests] == [
        {}, {"project": ["proj_1"]}, {"project": ["proj_1"], "region": ["us-central2-a"]}]


@pytest.mark.parametrize(("path", "body"), [
    ("/v2/ssh-keys", [{"fid": "sshkey_1", "name": "k", "public_key": "ssh-ed25519 A\x1b[2J"}]),
    ("/v2/ssh-keys", [{"fid": "sshkey_1", "name": "k", "required": "maybe"}]),
    ("/v2/volumes", [{"fid": "vol_1", "name": "v", "region": "r", "interface": "Block"}]),
    ("/v2/volumes", {"data": "x"}),
    ("/v2/projects", {"items": []}),
    ("/v2/projects", None),
])
def test_malformed_lists_are_malformed_response(client: ApiClient, mithril: FakeMithril, path: str,
                                                body: Any) -> None:
    mithril.route("GET", path, Reply(body))
    call = {"/v2/ssh-keys": lambda: list_ssh_keys(client, "proj_1"),
            "/v2/volumes": lambda: list_volumes(client, "proj_1"),
            "/v2/projects": lambda: list_projects(client)}[path]
    with pytest.raises(MalformedResponse):
        call()


def test_create_volume_sends_the_documented_body(client: ApiClient, mithril: FakeMithril) -> None:
    mithril.route("POST", "/v2/volumes", Reply(VOLUME, status=201))
    key = idempotency_key("proj_1", "data")
    volume = create_volume(client, project="proj_1", name="data", region="us-central2-a", size_gb=500,
                           interface="Block", idempotency_key=key)
    assert volume.fid == "vol_Q7w2eR9tY1uI3oP5"
    [sent] = mithril.requests
    assert sent.body == {"name": "data", "project": "proj_1", "region": "us-central2-a", "size_gb": 500,
                         "disk_interface": "Block"}
    assert sent.headers["idempotency-key"] == key


def test_delete_volume(client: ApiClient, mithril: FakeMithril) -> None:
    mithril.route("DELETE", "/v2/volumes/vol_1", Reply(status=204))
    assert delete_volume(client, "vol_1") is True and delete_volume(client, "vol_2") is False


# Pagination.


def _bid(n: int) -> dict:
    return {**BID, "fid": f"bid_{n}", "name": f"job-{n}"}


def test_list_bids_follows_cursors_across_pages(client: ApiClient, mithril: FakeMithril) -> None:
    mithril.route("GET", BIDS, Reply({"data": [_bid(1), _bid(2)], "next_cursor": "c1"}),
                  Reply({"data": [_bid(3)], "next_cursor": "c2"}), Reply({"data": [_bid(4)], "next_cursor": None}))
    bids = list_bids(client, "proj_1", name="job", status="Open")
    assert [b.fid for b in bids] == ["bid_1", "bid_2", "bid_3", "bid_4"]
    base = {"project": ["proj_1"], "name": ["job"], "status": ["Open"], "limit": ["100"]}
    assert [r.query for r in mithril.requests] == [base, {**base, "next_cursor": ["c1"]},
                                                   {**base, "next_cursor": ["c2"]}]


def test_list_bids_stops_on_a_repeated_cursor(client: ApiClient, mithril: FakeMithril) -> None:
    mithril.route("GET", BIDS, Reply({"data": [_bid(1)], "next_cursor": "c1"}),
                  Reply({"data": [_bid(2)], "next_cursor": "c2"}), Reply({"data": [_bid(2)], "next_cursor": "c1"}))
    with pytest.raises(MalformedResponse) as info:
        list_bids(client, "proj_1")
    assert "cursor it sent before" in str(info.value) and mithril.hits("GET", BIDS) == 3


def test_list_bids_stops_after_max_pages(client: ApiClient, mithril: FakeMithril,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compute, "MAX_PAGES", 5)
    mithril.route("GET", BIDS, lambda seen: Reply({"data": [], "next_cursor": f"c{len(mithril.requests)}"}))
    with pytest.raises(MalformedResponse, match="more than 5 pages"):
        list_bids(client, "proj_1")
    assert mithril.hits("GET", BIDS) == 5


@pytest.mark.parametrize("cursor", [5, ["c"], "c" * 5000, "c\x1b[2J"])
def test_unusable_cursors_are_malformed(client: ApiClient, mithril: FakeMithril, cursor: Any) -> None:
    mithril.route("GET", BIDS, Reply({"data": [], "next_cursor": cursor}))
    with pytest.raises(MalformedResponse):
        list_bids(client, "proj_1")
    assert mithril.hits("GET", BIDS) == 1


def test_list_instances_filters_by_bids_and_pages(client: ApiClient, mithril: FakeMithril) -> None:
    mithril.route("GET", "/v2/instances", Reply({"data": [INSTANCE], "next_cursor": "n1"}),
                  Reply({"data": [{**INSTANCE, "fid": "inst_B2", "ssh_destination": None}], "next_cursor": None}))
    rows = list_instances(client, "proj_1", [BID_FID, "bid_other"])
    assert [(r.fid, r.status, r.ssh_destination) for r in rows] == [
        ("inst_A1", "STATUS_RUNNING", "203.0.113.7:2222"), ("inst_B2", "STATUS_RUNNING", None)]
    assert mithril.requests[0].query == {"project": ["proj_1"], "bid_fid_in": [BID_FID, "bid_other"],
                                         "limit": ["100"]}
    assert mithril.requests[1].query["next_cursor"] == ["n1"]
    assert list_instances(client, "proj_1", []) == [] and len(mithril.requests) == 2


# Idempotency keys.


def test_idempotency_key_is_deterministic_and_canonical() -> None:
    first = idempotency_key("proj_1", {"b": 1, "a": [1, 2]}, b"\x00\xff")
    assert first == idempotency_key("proj_1", {"a": [1, 2], "b": 1}, b"\x00\xff")
    assert first.startswith("flowc-") and len(first) == 38 and all(c in "0123456789abcdef" for c in first[6:])
    assert first != idempotency_key("proj_1", {"b": 1, "a": [2, 1]}, b"\x00\xff")
    assert idempotency_key("ab", "c") != idempotency_key("a", "bc")
    assert idempotency_key() == idempotency_key()
    with pytest.raises(TypeError):
        idempotency_key(1)  # type: ignore[arg-type]


# The key and the startup script never leak.


def test_key_and_startup_script_never_in_logs_or_errors(mithril: FakeMithril, caplog: pytest.LogCaptureFixture,
                                                        sleeps: list[float]) -> None:
    echo = {"detail": f"Authorization: Bearer {KEY}"}
    mithril.route("POST", BIDS, Reply(echo, 429, {"Retry-After": "0"}), Reply(echo, 500))
    mithril.route("PATCH", f"{BIDS}/{BID_FID}", Reply(echo, 503), Reply(echo, 502), Reply(echo, 503))
    mithril.route("POST", "/v2/volumes", Reply({"detail": [{"loc": ["body", "name"], "msg": f"bad {KEY}",
                                                            "type": "x"}]}, 422))
    mithril.route("DELETE", f"{BIDS}/{BID_FID}", Reply({"detail": f"quota {KEY}"}, 403))
    mithril.route("POST", "/v2/ssh-keys", Reply(action="hang"))
    errors: list[MithrilApiError] = []
    with caplog.at_level(logging.DEBUG):
        with ApiClient(mithril.url, KEY, timeout=0.3, retries=3, backoff_s=0.001, sleep=sleeps.append,
                       breaker_threshold=0) as api:
            calls = [
                lambda: create_bid(api, BID_REQUEST, "flowc-log"),
                lambda: update_bid(api, BID_FID, {"limit_price": "$30.00"}),
                lambda: create_volume(api, project="proj_1", name="data", region="r", size_gb=1, interface="File",
                                      idempotency_key="flowc-v"),
                lambda: cancel_bid(api, BID_FID),
                lambda: api.send_json("POST", "/v2/ssh-keys", body=BID_REQUEST),
            ]
            for call in calls:
                with pytest.raises(MithrilApiError) as info:
                    call()
                errors.append(info.value)
            client_repr = repr(api)
    assert [type(e) for e in errors] == [ServerError, ServerError, ValidationFailed, QuotaExceeded, NetworkError]
    assert [e.outcome_unknown for e in errors] == [True, True, False, False, True]
    assert caplog.records, "the retries should have logged"
    texts = [caplog.text, client_repr, *(str(e) for e in errors), *(repr(e) for e in errors),
             *(e.help or "" for e in errors), *(repr(getattr(e, "detail", None)) for e in errors)]
    assert_no_key(*texts)
    assert not any(SCRIPT_MARKER in text for text in texts)
    for record in caplog.records:
        assert SCRIPT_MARKER not in record.getMessage() and "flowc-log" not in record.getMessage()


def test_not_found_on_get_bid(client: ApiClient, mithril: FakeMithril) -> None:
    with pytest.raises(NotFound) as info:
        get_bid(client, "bid_missing")
    assert info.value.status == 404 and mithril.hits("GET", f"{BIDS}/bid_missing") == 1
