"""The Mithril API client, models, endpoints and TTL cache against a real local HTTP server.

The server answers in the exact shapes of reference/mithril-api.md (bare availability list, ``{series: [...]}``
history with dollar strings, cents from ``/v2/pricing/current``) and counts every request, so retries are
asserted on the server side. Sleeps are recorded, never slept.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from flowc.providers.mithril.api.client import ApiClient
from flowc.providers.mithril.api.endpoints import instance_types, price_history, pricing_current, spot_availability
from flowc.providers.mithril.api.errors import (
    AuthError,
    CircuitOpen,
    MalformedResponse,
    MithrilApiError,
    NetworkError,
    NotFound,
    RateLimited,
    ServerError,
    ValidationFailed,
)
from flowc.providers.mithril.domain.cache import TtlCache

from conftest import serve_http

KEY = "fkey_TESTSECRET_0123456789abcdef"

AVAILABILITY = [
    {
        "fid": "auc_3bQ8rT1yU6iO9pA2",
        "instance_type": "it_5ECSoHQjLBzrp5YM",
        "region": "us-central2-a",
        "capacity": 6,
        "last_instance_price": "$11.20",
        "lowest_allocated_price": "$11.20",
        "adjustable_memory": False,
        "default_image_version": "imgver_u22cuda122",
    },
    {
        "fid": "auc_9kL4mN7bV2cX5zQ1",
        "instance_type": "it_RrgkIZz6c9BZu5gi",
        "region": "us-central1-b",
        "capacity": 14,
        "last_instance_price": "$1.05",
        "lowest_allocated_price": None,
        "adjustable_memory": True,
        "default_image_version": None,
        "some_future_field": {"nested": 1},
    },
]

INSTANCE_TYPES = [
    {
        "fid": "it_5ECSoHQjLBzrp5YM",
        "name": "h100-80gb.sxm.8x",
        "num_cpus": 192,
        "cpu_type": "Xeon",
        "ram_gb": 1800,
        "num_gpus": 8,
        "gpu_type": "H100",
        "gpu_memory_gb": 80,
        "gpu_socket": "SXM5",
        "local_storage_gb": 7800,
        "network_type": "InfiniBand",
        "ib_count": 8,
        "bridge_count": 0,
        "hourly_price": 24.0,
    },
    {"fid": "it_RrgkIZz6c9BZu5gi", "name": "a100-80gb.sxm.4x", "ram": 900, "gpus": [{"name": "A100", "count": 4}]},
]

HISTORY = {
    "series": [
        {
            "instance_type": "it_5ECSoHQjLBzrp5YM",
            "region": "us-central2-a",
            "timestamps": ["2025-09-14T15:00:00Z", "2025-09-14T16:00:00Z", "2025-09-14T17:00:00Z"],
            "spot_prices": ["$10.40", None, "$11.20"],
            "reserved_prices": ["$19.92", "$19.92", "$19.92"],
            "region_disabled": False,
        },
        {
            "instance_type": "it_5ECSoHQjLBzrp5YM",
            "region": "us-central1-b",
            "timestamps": ["2025-09-14T15:00:00Z"],
            "spot_prices": ["$99.00"],
            "reserved_prices": [None],
            "region_disabled": True,
        },
    ],
    "complete": True,
    "show_disabled_regions": False,
}

CURRENT = {
    "spot_price_cents": 1120,
    "reserved_price_cents": 1992,
    "minimum_price_cents": 800,
    "lowest_allocated_bid_cents": 1120,
    "dynamic_win_price_cents": 1121,
    "available_capacity": 6,
    "total_capacity": 40,
}


@dataclass
class Reply:
    """One scripted answer: a JSON body (or raw text), status, headers and a delay before answering."""

    body: Any = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    raw: str | None = None
    delay: float = 0.0


@dataclass
class Request:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


class FakeMithril:
    """Scripted replies per path; the last reply of a script repeats. Unknown paths answer 404."""

    def __init__(self) -> None:
        """Start with no routes and no requests."""
        self.url = ""
        self.routes: dict[str, list[Reply]] = {}
        self.hits: Counter[str] = Counter()
        self.requests: list[Request] = []
        self._lock = threading.Lock()

    def route(self, path: str, *replies: Reply) -> None:
        self.routes[path] = list(replies)

    def next_reply(self, request: Request) -> Reply:
        with self._lock:
            self.hits[request.path] += 1
            self.requests.append(request)
            script = self.routes.get(request.path)
            if not script:
                return Reply({"detail": "Not Found"}, status=404)
            return script.pop(0) if len(script) > 1 else script[0]


def _handler(fake: FakeMithril) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            request = Request(parts.path, parse_qs(parts.query), {k.lower(): v for k, v in self.headers.items()})
            reply = fake.next_reply(request)
            if reply.delay:
                time.sleep(reply.delay)
            payload = (reply.raw if reply.raw is not None else json.dumps(reply.body)).encode()
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client timed out and left

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def mithril() -> Any:
    fake = FakeMithril()
    with serve_http(_handler(fake)) as fake.url:
        yield fake


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MITHRIL_API_URL", raising=False)
    monkeypatch.delenv("MITHRIL_API_KEY", raising=False)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(mithril: FakeMithril, sleeps: list[float]) -> Any:
    with ApiClient(mithril.url, KEY, timeout=2.0, retries=3, backoff_s=0.1, sleep=sleeps.append) as api:
        yield api


def assert_no_key(*texts: str) -> None:
    for text in texts:
        assert KEY not in text
        assert KEY[5:] not in text  # not even the key without its prefix


# Happy paths: exact reference shapes, parameters and headers.


def test_availability_parses_bare_list_and_dollar_strings(client: ApiClient, mithril: FakeMithril) -> None:
    mithril.route("/v2/spot/availability", Reply(AVAILABILITY))
    rows = spot_availability(client)
    assert [(r.fid, r.region, r.capacity) for r in rows] == [
        ("auc_3bQ8rT1yU6iO9pA2", "us-central2-a", 6),
        ("auc_9kL4mN7bV2cX5zQ1", "us-central1-b", 14),
    ]
    assert rows[0].last_instance_price == 11.2 and rows[0].price_per_instance_hour == 11.2
    assert rows[0].lowest_allocated_price == 11.2 and rows[1].lowest_allocated_price is None
    assert rows[1].last_instance_price == 1.05 and rows[1].adjustable_memory is True
    sent = mithril.requests[0]
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["user-agent"].startswith("flowc/")
    assert sent.query == {}  # the spec declares no query params; None ones are dropped


def test_availability_accepts_wrapped_list(client: ApiClient, mithril: FakeMithril) -> None:
    mithril.route("/v2/spot/availability", Reply({"data": AVAILABILITY[:1], "next_cursor": None}))
    assert [r.fid for r in spot_availability(client, project="proj_1")] == ["auc_3bQ8rT1yU6iO9pA2"]
    assert mithril.requests[0].query == {"project": ["proj_1"]}


def test_instance_types_accepts_flat_and_gpus_list_shapes(client: ApiClient, mithril: FakeMithril) -> None:
    mithril.route("/v2/instance-types", Reply(INSTANCE_TYPES))
    h100, a100 = instance_types(client)
    assert (h100.fid, h100.name, h100.num_gpus, h100.gpu_type, h100.gpu_memory_gb) == (
        "it_5ECSoHQjLBzrp5YM", "h100-80gb.sxm.8x", 8, "H100", 80
    )
    assert (h100.hourly_price, h100.network_type, h100.ram_gb) == (24.0, "InfiniBand", 1800)
    assert (a100.num_gpus, a100.gpu_type, a100.ram_gb) == (4, "A100", 900)


def test_price_history_sends_reference_params_and_parses_series(client: ApiClient, mithril: FakeMithril) -> None:
    mithril.route("/v2/pricing/history", Reply(HISTORY))
    now = datetime(2025, 9, 14, 18, 0, tzinfo=UTC)
    points = price_history(client, "it_5ECSoHQjLBzrp5YM", "us-central2-a", hours=24, now=now)
    assert [(p.time.hour, p.price) for p in points] == [(15, 10.4), (17, 11.2)]  # gap skipped, other region not
    assert all(p.time.tzinfo is not None for p in points)
    assert mithril.requests[0].query == {
        "instance_types": ["it_5ECSoHQjLBzrp5YM"],
        "region": ["us-central2-a"],
        "num_samples": ["-1"],
        "start_time": ["2025-09-13T18:00:00Z"],
        "end_time": ["2025-09-14T18:00:00Z"],
    }


def test_price_history_without_matching_series_is_empty(client: ApiClient, mithril: FakeMithril) -> None:
    mithril.route("/v2/pricing/history", Reply({"series": [], "complete": True}))
    assert price_history(client, "it_x", "us-central2-a", hours=1) == []


def test_pricing_current_converts_cents(client: ApiClient, mithril: FakeMithril) -> None:
    mithril.route("/v2/pricing/current", Reply(CURRENT))
    quote = pricing_current(client, "it_5ECSoHQjLBzrp5YM", "us-central2-a")
    assert quote.spot_price_cents == 1120
    assert (quote.spot_price, quote.reserved_price, quote.minimum_price) == (11.2, 19.92, 8.0)
    assert (quote.lowest_allocated_bid, quote.dynamic_win_price) == (11.2, 11.21)
    assert (quote.available_capacity, quote.total_capacity) == (6, 40)
    assert mithril.requests[0].query == {
        "instance_type": ["it_5ECSoHQjLBzrp5YM"],
        "region": ["us-central2-a"],
        "instance_quantity": ["1"],
    }


def test_env_supplies_url_and_key(mithril: FakeMithril, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MITHRIL_API_URL", mithril.url + "/")
    monkeypatch.setenv("MITHRIL_API_KEY", KEY)
    mithril.route("/v2/pricing/current", Reply(CURRENT))
    with ApiClient() as api:
        assert api.base_url == mithril.url and api.has_key
        pricing_current(api, "it_1")
        assert_no_key(repr(api))
    assert mithril.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_default_base_url() -> None:
    with ApiClient() as api:
        assert api.base_url == "https://api.mithril.ai" and not api.has_key


# Errors that are not retried.


def test_401_is_auth_error_with_help_and_no_retry(client: ApiClient, mithril: FakeMithril) -> None:
    mithril.route("/v2/spot/availability", Reply({"detail": f"invalid token Bearer {KEY}"}, status=401))
    with pytest.raises(AuthError) as info:
        spot_availability(client)
    assert info.value.status == 401 and "MITHRIL_API_KEY" in (info.value.help or "")
    assert mithril.hits["/v2/spot/availability"] == 1
    assert_no_key(str(info.value), repr(info.value))


def test_401_without_key_says_to_set_it(mithril: FakeMithril) -> None:
    mithril.route("/v2/instance-types", Reply({"detail": "Not authenticated"}, status=401))
    with ApiClient(mithril.url, sleep=lambda _: None) as api, pytest.raises(AuthError) as info:
        instance_types(api)
    assert (info.value.help or "").startswith("set MITHRIL_API_KEY")
    assert "authorization" not in mithril.requests[0].headers


def test_403_is_auth_error_about_project_access(client: ApiClient, mithril: FakeMithril) -> None:
    mithril.route("/v2/pricing/current", Reply({"detail": "not a member of project"}, status=403))
    with pytest.raises(AuthError) as info:
        pricing_current(client, "it_1", "us-central2-a")
    assert "not a member of project" in str(info.value) and "project" in (info.value.help or "")


def test_404_is_not_found(client: ApiClient, mithril: FakeMithril) -> None:
    with pytest.raises(NotFound) as info:
        client.get_json("/v2/nowhere")
    assert info.value.status == 404 and mithril.hits["/v2/nowhere"] == 1


def test_422_carries_the_api_detail_redacted(client: ApiClient, mithril: FakeMithril) -> None:
    detail = [{"loc": ["query", "region"], "msg": f"unknown region for {KEY}", "type": "value_error"}]
    mithril.route("/v2/pricing/current", Reply({"detail": detail}, status=422))
    with pytest.raises(ValidationFailed) as info:
        pricing_current(client, "it_1", "mars-1")
    assert "query.region: unknown region for ***" in str(info.value)
    assert info.value.detail == [{"loc": ["query", "region"], "msg": "unknown region for ***", "type": "value_error"}]
    assert_no_key(str(info.value), repr(info.value), repr(info.value.detail))
    assert mithril.hits["/v2/pricing/current"] == 1


def test_malformed_json_is_not_retried(client: ApiClient, mithril: FakeMithril, sleeps: list[float]) -> None:
    mithril.route("/v2/spot/availability", Reply(raw="<html>gateway</html>"))
    with pytest.raises(MalformedResponse) as info:
        spot_availability(client)
    assert "not json" in str(info.value) and mithril.hits["/v2/spot/availability"] == 1 and sleeps == []


def test_wrong_shape_is_malformed_not_a_pydantic_error(client: ApiClient, mithril: FakeMithril) -> None:
    mithril.route("/v2/spot/availability", Reply([{"fid": "auc_1", "region": "r", "last_instance_price": "cheap"}]))
    with pytest.raises(MalformedResponse) as info:
        spot_availability(client)
    assert str(info.value).startswith("mithril api sent an unexpected shape on GET /v2/spot/availability: 0.")


# Retries, backoff and Retry-After.


def test_429_honours_retry_after_then_succeeds(client: ApiClient, mithril: FakeMithril, sleeps: list[float]) -> None:
    slow_down = Reply({"detail": "slow down"}, 429, {"Retry-After": "2"})
    mithril.route("/v2/spot/availability", slow_down, Reply(AVAILABILITY))
    assert len(spot_availability(client)) == 2
    assert mithril.hits["/v2/spot/availability"] == 2
    assert sleeps == [2.0]


def test_429_without_retry_after_backs_off(client: ApiClient, mithril: FakeMithril, sleeps: list[float]) -> None:
    mithril.route("/v2/instance-types", Reply(None, 429), Reply(INSTANCE_TYPES))
    assert len(instance_types(client)) == 2
    assert len(sleeps) == 1 and 0.1 <= sleeps[0] <= 0.15


def test_429_with_too_long_retry_after_fails_at_once(client: ApiClient, mithril: FakeMithril,
                                                      sleeps: list[float]) -> None:
    mithril.route("/v2/instance-types", Reply(None, 429, {"Retry-After": "3600"}))
    with pytest.raises(RateLimited) as info:
        instance_types(client)
    assert info.value.retry_after == 3600 and "3600s" in str(info.value)
    assert mithril.hits["/v2/instance-types"] == 1 and sleeps == []


def test_500_then_success(client: ApiClient, mithril: FakeMithril, sleeps: list[float]) -> None:
    mithril.route("/v2/pricing/current", Reply({"detail": "boom"}, 500), Reply(CURRENT))
    assert pricing_current(client, "it_1").spot_price == 11.2
    assert mithril.hits["/v2/pricing/current"] == 2
    assert len(sleeps) == 1 and 0.1 <= sleeps[0] <= 0.15


def test_5xx_exhausts_retries_with_exponential_backoff(client: ApiClient, mithril: FakeMithril,
                                                       sleeps: list[float]) -> None:
    mithril.route("/v2/pricing/current", Reply({"detail": "bad gateway"}, 502))
    with pytest.raises(ServerError) as info:
        pricing_current(client, "it_1")
    assert info.value.status == 502 and mithril.hits["/v2/pricing/current"] == 4  # 1 + 3 retries
    for attempt, slept in enumerate(sleeps):
        assert 0.1 * 2**attempt <= slept <= 0.15 * 2**attempt
    assert len(sleeps) == 3


def test_timeout_is_network_error_after_retries(mithril: FakeMithril, sleeps: list[float]) -> None:
    mithril.route("/v2/spot/availability", Reply(AVAILABILITY, delay=1.0))
    with ApiClient(mithril.url, KEY, timeout=0.2, retries=1, backoff_s=0.01, sleep=sleeps.append) as api:
        with pytest.raises(NetworkError) as info:
            spot_availability(api)
    assert "timed out" in str(info.value) and info.value.status is None
    assert mithril.hits["/v2/spot/availability"] == 2 and len(sleeps) == 1


def test_connection_refused_is_network_error(sleeps: list[float]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with ApiClient(f"http://127.0.0.1:{port}", KEY, retries=2, backoff_s=0.01, sleep=sleeps.append) as api:
        with pytest.raises(NetworkError) as info:
            api.get_json("/v2/spot/availability")
    assert "cannot reach mithril api" in str(info.value) and len(sleeps) == 2
    assert_no_key(str(info.value), repr(info.value))


# Circuit breaker.


def test_circuit_breaker_fails_fast_then_recovers(mithril: FakeMithril, sleeps: list[float]) -> None:
    now = [100.0]
    mithril.route("/v2/pricing/current", Reply({"detail": "down"}, 503), Reply({"detail": "down"}, 503),
                  Reply({"detail": "down"}, 503), Reply(CURRENT))
    api = ApiClient(mithril.url, KEY, retries=0, sleep=sleeps.append, breaker_threshold=3, breaker_reset_s=30,
                    clock=lambda: now[0])
    with api:
        for _ in range(3):
            with pytest.raises(ServerError):
                pricing_current(api, "it_1")
        with pytest.raises(CircuitOpen) as info:
            pricing_current(api, "it_1")
        assert mithril.hits["/v2/pricing/current"] == 3  # failed fast: nothing sent
        assert "3 consecutive failures" in str(info.value) and "30s" in (info.value.help or "")
        now[0] += 31
        assert pricing_current(api, "it_1").spot_price == 11.2  # the trial call succeeds and closes the breaker
        assert not api.breaker.is_open()
    assert mithril.hits["/v2/pricing/current"] == 4


def test_circuit_opens_during_retries(mithril: FakeMithril, sleeps: list[float]) -> None:
    mithril.route("/v2/spot/availability", Reply(None, 500))
    with ApiClient(mithril.url, KEY, retries=5, backoff_s=0.01, sleep=sleeps.append, breaker_threshold=2) as api:
        with pytest.raises(CircuitOpen) as info:
            spot_availability(api)
    assert isinstance(info.value.__cause__, ServerError)
    assert mithril.hits["/v2/spot/availability"] == 2


def test_client_errors_do_not_trip_the_breaker(client: ApiClient, mithril: FakeMithril) -> None:
    for _ in range(8):
        with pytest.raises(NotFound):
            client.get_json("/v2/missing")
    assert not client.breaker.is_open()


# The API key never leaks.


def test_key_never_in_messages_reprs_or_logs(mithril: FakeMithril, caplog: pytest.LogCaptureFixture) -> None:
    echo = {"detail": f"Authorization: Bearer {KEY}"}
    mithril.route("/v2/a", Reply(echo, 429, {"Retry-After": "0"}), Reply(echo, 500), Reply(echo, 401))
    mithril.route("/v2/b", Reply(echo, 422))
    mithril.route("/v2/c", Reply(raw=f"oops {KEY}"))
    mithril.route("/v2/d", Reply(echo, 503))
    mithril.route("/v2/e", Reply(echo, 418))
    errors: list[MithrilApiError] = []
    with caplog.at_level(logging.DEBUG):
        with ApiClient(mithril.url, KEY, retries=3, backoff_s=0.001, sleep=lambda _: None) as api:
            for path in ("/v2/a", "/v2/b", "/v2/c", "/v2/d", "/v2/e"):
                with pytest.raises(MithrilApiError) as info:
                    api.get_json(path)
                errors.append(info.value)
            client_repr = repr(api)
    assert [type(e) for e in errors] == [AuthError, ValidationFailed, MalformedResponse, ServerError, MithrilApiError]
    assert "***" in str(errors[3])
    assert caplog.records, "the retries should have logged"
    assert_no_key(caplog.text, client_repr, *(str(e) for e in errors), *(repr(e) for e in errors),
                  *(repr(getattr(e, "detail", None)) for e in errors))


# TtlCache.


def test_cache_hit_within_ttl_and_reload_after(client: ApiClient, mithril: FakeMithril) -> None:
    now = [0.0]
    cache: TtlCache[list] = TtlCache(ttl_s=900, clock=lambda: now[0])
    mithril.route("/v2/spot/availability", Reply(AVAILABILITY))
    first = cache.get_or_load("availability", lambda: spot_availability(client))
    now[0] = 899.0
    assert cache.get_or_load("availability", lambda: spot_availability(client)) is first
    assert mithril.hits["/v2/spot/availability"] == 1
    now[0] = 900.0
    cache.get_or_load("availability", lambda: spot_availability(client))
    assert mithril.hits["/v2/spot/availability"] == 2


def test_cache_lru_eviction_and_len() -> None:
    now = [0.0]
    cache: TtlCache[int] = TtlCache(ttl_s=10, max_entries=2, clock=lambda: now[0])
    cache.set("a", 1)
    cache.set("b", 2)
    assert cache.get("a") == 1  # 'a' is now the most recently used
    cache.set("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c"), len(cache)) == (1, None, 3, 2)
    assert cache.get("b", default=-1) == -1
    now[0] = 10.0
    assert len(cache) == 0


def test_cache_never_stores_failures() -> None:
    cache: TtlCache[int] = TtlCache()
    calls = Counter[str]()

    def failing() -> int:
        calls["n"] += 1
        raise NetworkError("down")

    for _ in range(2):
        with pytest.raises(NetworkError):
            cache.get_or_load("k", failing)
    assert calls["n"] == 2 and len(cache) == 0
    assert cache.get_or_load("k", lambda: 5) == 5 and cache.get("k") == 5
