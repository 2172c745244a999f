"""A hostile Mithril server: bodies of any shape, answers that trickle, echoes of the key (issue 11).

A real local TCP server plays each attack byte by byte, so the client's own HTTP stack, deadlines and decoder are
what is tested. Every failure must be a ``MithrilApiError`` with a message (exit 1 at the CLI), never a
``RecursionError`` or another internal error, and never a hang; no message, repr, log line or stored row may hold
the API key in any encoding.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import os
import socket
import socketserver
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowc.cli import main
from flowc.providers.mithril.api.body import MAX_DEPTH, BodyError, decode_json
from flowc.providers.mithril.api.client import ApiClient
from flowc.providers.mithril.api.endpoints import (
    instance_types,
    named_ids,
    price_history,
    pricing_current,
    spot_availability,
)
from flowc.providers.mithril.api.errors import MalformedResponse, MithrilApiError, NetworkError
from flowc.providers.mithril.api.redact import Redactor
from flowc.providers.mithril.domain.sources import LiveSource
from flowc.providers.mithril.domain.store import PriceStore

KEY = "fkey_HOSTILE_0123456789abcdefXYZ"
ROW = {"fid": "auc_1", "instance_type": "it_1", "region": "us-central2-a", "capacity": 6,
       "last_instance_price": "$11.20"}

Handler = Callable[[socket.socket], None]


def encodings_of(secret: str) -> list[str]:
    """Return the echoes a server could send of ``secret``: escaped, encoded, embedded in a header."""
    data = secret.encode()
    return [
        secret,
        "".join(f"\\u{ord(c):04x}" for c in secret),
        "".join(f"\\u{ord(c):04X}" for c in secret),
        "\\u0066" + secret[1:],
        quote(secret, safe=""),
        "".join(f"%{b:02x}" for b in data),
        "".join(f"&#{ord(c)};" for c in secret),
        html.escape(f"<{secret}>"),
        base64.b64encode(b"Bearer " + data).decode(),
        base64.b64encode(b"user:" + data).decode(),
        base64.urlsafe_b64encode(data).decode().rstrip("="),
        quote(json.dumps({"k": secret}).replace(secret[:4], "\\u0066key"), safe=""),
    ]


def assert_no_key(*texts: str) -> None:
    """Fail when any text holds the key, or any encoding of it a reader could decode."""
    forms = [KEY, KEY[5:], "".join(f"%{b:02x}" for b in KEY[5:].encode()),
             base64.b64encode(KEY.encode()).decode()[8:30]]
    for text in texts:
        for form in forms:
            assert form.lower() not in text.lower(), text
        assert not Redactor(KEY).carries(text), text


class ScriptedServer:
    """A TCP server that reads one HTTP request per connection and hands the socket to the current handler.

    Each connection serves one request, so complete answers say ``Connection: close``.
    """

    def __init__(self) -> None:
        """Start serving on a free local port with no handler."""
        self.handler: Handler = lambda conn: None
        self.hits = 0
        self.request_lines: list[bytes] = []
        outer = self

        class _Request(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                conn: socket.socket = self.request
                conn.settimeout(10)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    data += chunk
                outer.hits += 1
                outer.request_lines.append(data.split(b"\r\n", 1)[0])
                try:
                    outer.handler(conn)
                except OSError:
                    pass  # the client gave up and closed: that is what the deadline tests want

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Request)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def api(self) -> ApiClient:
        """One client for this server, kept across a property test's examples."""
        if not hasattr(self, "_api"):
            self._api = client(self, breaker_threshold=0)
        return self._api

    def close(self) -> None:
        """Stop serving (and close the shared client)."""
        if hasattr(self, "_api"):
            self._api.close()
        self._server.shutdown()
        self._server.server_close()


def answer(body: bytes | str | Any, status: int = 200, headers: dict[str, str] | None = None) -> Handler:
    """Return a handler that sends one complete answer (a non-bytes, non-str body is sent as JSON)."""
    if not isinstance(body, bytes | str):
        body = json.dumps(body)
    payload = body.encode() if isinstance(body, str) else body
    head = f"HTTP/1.1 {status} X\r\nConnection: close\r\nContent-Type: application/json\r\n"
    head += f"Content-Length: {len(payload)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())

    def send(conn: socket.socket) -> None:
        conn.sendall(head.encode() + b"\r\n" + payload)

    return send


def trickle(data: bytes, every_s: float) -> Handler:
    """Return a handler that sends ``data`` one byte at a time, ``every_s`` seconds apart."""
    def send(conn: socket.socket) -> None:
        for i in range(len(data)):
            conn.sendall(data[i:i + 1])
            time.sleep(every_s)

    return send


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer()
    yield scripted
    scripted.close()


@pytest.fixture(autouse=True)
def _env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MITHRIL_API_URL", raising=False)
    monkeypatch.delenv("MITHRIL_API_KEY", raising=False)
    monkeypatch.setenv("FLOWC_DATA_DIR", str(tmp_path / "data"))


def client(server: ScriptedServer, **options: Any) -> ApiClient:
    defaults: dict[str, Any] = {"retries": 0, "sleep": lambda _: None}
    return ApiClient(server.url, KEY, **{**defaults, **options})


# Bodies of any shape are API errors.


def test_deeply_nested_json_is_an_api_error_not_recursion(server: ScriptedServer) -> None:
    server.handler = answer(b"[" * 100_000 + b"]" * 100_000)
    with client(server) as api, pytest.raises(MalformedResponse) as info:
        spot_availability(api)
    assert f"deeper than {MAX_DEPTH} levels" in str(info.value) and info.value.help


def test_deep_json_at_the_cli_exits_1(server: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    server.handler = answer(b'{"detail": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    monkeypatch.setenv("MITHRIL_API_URL", server.url)
    monkeypatch.setenv("MITHRIL_API_KEY", KEY)
    result = CliRunner().invoke(main, ["pricing", "--source", "live", "--format", "json"])
    assert result.exit_code == 1, result.output
    assert "flowc pricing: error: mithril api sent a body that is not usable json" in result.output


def test_api_failure_during_build_exits_1(server: ScriptedServer, monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    server.handler = answer(b"[" * 100_000)
    monkeypatch.setenv("MITHRIL_API_URL", server.url)
    monkeypatch.setenv("MITHRIL_API_KEY", KEY)
    document = Path(__file__).parent / "golden" / "warnings" / "input.yaml"
    result = CliRunner().invoke(main, ["build", str(document), "-o", str(tmp_path / "out"), "--prices", "live"])
    assert result.exit_code == 1, result.output
    assert "flowc: error: mithril api sent a body that is not usable json" in result.output


HOSTILE_BODIES = [
    b"[" * 65 + b"]" * 65,
    b'[{"a": ' * 40 + b"1" + b"}]" * 40,
    b"[" + b"9" * 5000 + b"]",
    b"[1e999]",
    b"[NaN]",
    b"[-Infinity]",
    b'["\\ud800"]',
    b"\xff\xfe[]",
    b"[1, 2",
    b"",
    b"null",
    b'"just a string"',
    json.dumps([{**ROW, "capacity": 10**25}]).encode(),
    json.dumps([{**ROW, "capacity": -1}]).encode(),
    json.dumps([{**ROW, "last_instance_price": "$nan"}]).encode(),
    json.dumps([{**ROW, "last_instance_price": "1e400"}]).encode(),
    json.dumps([{**ROW, "last_instance_price": [1]}]).encode(),
    json.dumps([{**ROW, "region": "a\nb"}]).encode(),
    json.dumps([{**ROW, "region": "r" * 10_000}]).encode(),
    json.dumps({"data": [{**ROW, "instance_type": None}]}).encode(),
]


@pytest.mark.parametrize("body", HOSTILE_BODIES, ids=range(len(HOSTILE_BODIES)))
def test_hostile_availability_bodies_are_api_errors(server: ScriptedServer, body: bytes) -> None:
    server.handler = answer(body)
    with client(server) as api:
        try:
            rows = spot_availability(api)
        except MithrilApiError as error:
            assert error.message and error.message.startswith("mithril api ")
            assert len(error.message) < 600
            assert all(c.isprintable() for c in error.message)
        else:
            assert rows == []  # only "null" or an empty list could be accepted, as no rows


@pytest.mark.parametrize("body", [
    {"fid": "it_1", "name": "n", "gpus": [{"name": "H100", "count": [8]}]},
    {"fid": "it_1", "name": "n", "gpus": [{"name": "H100", "count": "8" * 40}]},
    {"fid": "it_1", "name": "n", "gpus": [{"name": {"x": 1}, "count": 8}]},
])
def test_hostile_instance_types_are_api_errors(server: ScriptedServer, body: dict) -> None:
    server.handler = answer([body])
    with client(server) as api, pytest.raises(MalformedResponse):
        instance_types(api)


@pytest.mark.parametrize("timestamp", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "2025-02-30T00:00"])
def test_history_times_outside_utc_are_api_errors(server: ScriptedServer, timestamp: str) -> None:
    series = {"instance_type": "it_1", "region": "r", "timestamps": [timestamp], "spot_prices": ["$1"]}
    server.handler = answer({"series": [series]})
    with client(server) as api, pytest.raises(MalformedResponse):
        price_history(api, "it_1", "r", 24)


@pytest.mark.parametrize("body", [[1, 2], [{"name": "p"}], [{"name": ["p"], "fid": "proj_1"}], {"data": "x"}])
def test_hostile_named_lists_are_api_errors(server: ScriptedServer, body: Any) -> None:
    server.handler = answer(body)
    with client(server) as api, pytest.raises(MalformedResponse):
        named_ids(api, "/v2/projects")


def test_cents_beyond_a_float_are_api_errors(server: ScriptedServer) -> None:
    server.handler = answer({"spot_price_cents": 10**29})
    with client(server) as api, pytest.raises(MalformedResponse):
        pricing_current(api, "it_1")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(
        ["fid", "instance_type", "region", "capacity", "last_instance_price", "gpus", "count", "name", "num_gpus",
         "series", "timestamps", "spot_prices", "spot_price_cents", "data", "x"]), children, max_size=6),
    max_leaves=30,
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=json_values, endpoint=st.sampled_from(["availability", "types", "history", "current"]))
def test_any_json_body_gives_models_or_an_api_error(server: ScriptedServer, body: Any, endpoint: str) -> None:
    server.handler = answer(json.dumps(body, allow_nan=True))
    call = {"availability": spot_availability, "types": instance_types,
            "history": lambda api: price_history(api, "it_1", "r", 24),
            "current": lambda api: pricing_current(api, "it_1")}[endpoint]
    try:
        call(server.api)
    except MithrilApiError as error:
        assert error.message and all(c.isprintable() for c in error.message)


@given(st.binary(max_size=300))
def test_decode_json_raises_only_body_errors(raw: bytes) -> None:
    try:
        decode_json(raw)
    except BodyError as error:
        assert str(error)


# Deadlines: a trickling answer ends.


def test_trickling_body_ends_at_the_deadline(server: ScriptedServer) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    server.handler = lambda conn: (conn.sendall(head), trickle(b"[" + b" " * 998 + b"]", 0.3)(conn))
    started = time.monotonic()
    with client(server, timeout=10.0, deadline_s=1.0) as api, pytest.raises(NetworkError) as info:
        api.get_json("/v2/spot/availability")
    assert time.monotonic() - started < 6.0  # generous: the read timeout alone is 10 s
    assert "timed out" in str(info.value) and "1s" in str(info.value)


def test_trickling_headers_end_at_the_deadline(server: ScriptedServer) -> None:
    server.handler = trickle(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[]",
                             0.3)
    started = time.monotonic()
    with client(server, timeout=10.0, deadline_s=1.0) as api, pytest.raises(NetworkError) as info:
        api.get_json("/v2/spot/availability")
    assert time.monotonic() - started < 6.0
    assert "timed out" in str(info.value)


def test_a_proxy_from_the_environment_is_used_and_keeps_the_deadline(server: ScriptedServer,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_PROXY", "no_proxy", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", server.url)  # the scripted server plays the proxy
    server.handler = answer([])
    with ApiClient("http://api.example.invalid", KEY, retries=0) as api:
        assert api.get_json("/v2/spot/availability") == []
    assert server.request_lines[-1] == b"GET http://api.example.invalid/v2/spot/availability HTTP/1.1"
    server.handler = trickle(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[]",
                             0.3)
    started = time.monotonic()
    with ApiClient("http://api.example.invalid", KEY, retries=0, timeout=10.0, deadline_s=1.0) as api, \
            pytest.raises(NetworkError) as info:
        api.get_json("/v2/spot/availability")
    assert time.monotonic() - started < 6.0, "the proxy's trickle ends at the deadline"
    assert "timed out" in str(info.value)


def test_no_proxy_sends_the_request_directly(server: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    server.handler = answer([])
    with client(server) as api:
        assert api.get_json("/v2/spot/availability") == []
    assert server.request_lines[-1] == b"GET /v2/spot/availability HTTP/1.1"


def test_retries_as_a_whole_keep_the_total_deadline(server: ScriptedServer) -> None:
    server.handler = trickle(b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 100, 0.2)
    started = time.monotonic()
    with client(server, timeout=10.0, deadline_s=1.0, total_deadline_s=1.5, retries=5, backoff_s=0.05,
                sleep=time.sleep) as api, pytest.raises(NetworkError):
        api.get_json("/v2/spot/availability")
    assert time.monotonic() - started < 8.0
    assert server.hits <= 2  # the first attempt took 1 s of 1.5 s; at most one more could start


def test_a_prompt_answer_is_unaffected_by_the_deadline(server: ScriptedServer) -> None:
    server.handler = answer([ROW])
    with client(server, deadline_s=1.0, total_deadline_s=1.0) as api:
        assert [r.capacity for r in spot_availability(api)] == [6]


def test_oversized_and_compressed_bodies_are_refused(server: ScriptedServer) -> None:
    server.handler = answer(b"[" + b" " * 64 + b"]", headers={"Content-Encoding": "gzip"})
    with client(server) as api, pytest.raises(MalformedResponse, match="compressed"):
        api.get_json("/x")
    server.handler = lambda conn: conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n[")
    with client(server) as api, pytest.raises(MalformedResponse, match="larger than"):
        api.get_json("/x")


# The key, in any encoding, never leaks.


@pytest.mark.parametrize("echo", encodings_of(KEY), ids=range(len(encodings_of(KEY))))
@pytest.mark.parametrize("status", [401, 403, 404, 418, 422, 429, 500])
def test_escaped_key_echo_is_redacted_everywhere(server: ScriptedServer, caplog: pytest.LogCaptureFixture,
                                                 echo: str, status: int) -> None:
    bodies = [json.dumps({"detail": f"bad header Authorization: Bearer {echo}"}),
              json.dumps({"detail": [{"loc": ["header", echo], "msg": echo}]}),
              f"<html>echo {echo}</html>"]
    for body in bodies:
        # A JSON body can carry the key JSON-escaped only after json.dumps escaped the backslashes once more.
        server.handler = answer(body.replace("\\\\u", "\\u"), status, {"Retry-After": "0"})
        with caplog.at_level(logging.DEBUG):
            with client(server, retries=1) as api, pytest.raises(MithrilApiError) as info:
                api.get_json("/v2/spot/availability")
            error = info.value
        assert_no_key(str(error), repr(error), error.help or "", repr(getattr(error, "detail", None)), caplog.text,
                      repr(api))


def test_success_body_carrying_the_key_is_refused_and_not_stored(server: ScriptedServer) -> None:
    for echo in encodings_of(KEY):
        server.handler = answer([{**ROW, "instance_type": f"it_{echo}"}, ROW])
        store = PriceStore()
        with client(server) as api:
            source = LiveSource(store, api)
            with pytest.raises(MalformedResponse, match="echoed the api key"):
                source.current()
        assert_no_key(*(o.instance_type for o in store.latest()))
    db = PriceStore().path
    if db.exists():
        assert_no_key(db.read_bytes().decode("latin-1"))


NOISE = st.text(st.sampled_from("\\%&#;+u0aZ =\"") | st.characters(), max_size=8)


@given(prefix=NOISE, suffix=NOISE, base64_first=st.booleans(),
       layers=st.lists(st.sampled_from(["json", "url", "html"]), max_size=3))
def test_redactor_hides_any_echo(prefix: str, suffix: str, base64_first: bool, layers: list[str]) -> None:
    """The key, maybe base64-encoded inside a header value, then escaped up to three times, is found and hidden.

    Base64 is only ever the innermost layer: that is where it occurs (a Basic or Bearer header value), and base64
    of an escaped text would need decoding arbitrary base64, which no echo calls for.
    """
    text = KEY
    for layer in ["b64"] * base64_first + layers:
        if layer == "json":
            text = "".join(f"\\u{ord(c):04x}" for c in text)
        elif layer == "url":
            text = quote(text, safe="")
        elif layer == "html":
            text = "".join(f"&#{ord(c)};" for c in text)
        else:
            text = base64.b64encode((prefix + text).encode()).decode()
    redactor = Redactor(KEY)
    assert redactor.carries(prefix + text + suffix)
    assert not redactor.carries(redactor.text(prefix + text + suffix))


# The price store is private.


def test_store_is_created_0600_in_a_0700_directory(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        store = PriceStore(tmp_path / "new" / "prices.sqlite3")
        store.is_empty()
        assert store.is_empty()  # a store never written is not created
        from flowc.providers.mithril.domain.store import Observation
        from flowc.providers.mithril.times import parse_time

        store.record([Observation("it_1", "r", parse_time("2026-01-01T00:00:00Z"), 1.0)])
    finally:
        os.umask(old)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    for sidecar in store.path.parent.iterdir():
        assert stat.S_IMODE(sidecar.stat().st_mode) & 0o077 == 0, sidecar


def test_existing_world_readable_store_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "prices.sqlite3"
    sqlite3.connect(path).close()
    path.chmod(0o644)
    assert PriceStore(path).latest() == []
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_default_data_dir_is_tightened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOWC_DATA_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    data = tmp_path / "xdg" / "flowc"
    data.mkdir(parents=True, mode=0o755)
    data.chmod(0o755)
    PriceStore().is_empty()  # nothing stored yet: nothing touched
    sqlite3.connect(data / "prices.sqlite3").close()
    PriceStore().latest()
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "prices.sqlite3").stat().st_mode) == 0o600


def test_unusable_store_is_exit_1(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "prices.sqlite3").write_bytes(b"not a database" * 100)
    result = CliRunner().invoke(main, ["pricing", "--source", "local", "--format", "json"])
    assert result.exit_code == 1, result.output
    assert "flowc pricing: error: cannot" in result.output


@pytest.mark.parametrize("content", [
    b"time,instance_type,region,price\n2026-01-01T00:00:00Z,it,r,nan\n",
    b"time,instance_type,region,price\n2026-01-01T00:00:00Z,it,r,-1\n",
    b"time,instance_type,region,price\n2026-01-01T00:00:00Z,it,r,1e999\n",
    b"time,instance_type,region,price,availability\n2026-01-01T00:00:00Z,it,r,1,99999999999999999999\n",
    b"time,instance_type,region,price\n0001-01-01T00:00:00+05:00,it,r,1\n",
    b"time,instance_type,region,price\n2026-01-01T00:00:00Z,it,r,1\n\xff\xfe\n",
    b"time,instance_type,region,price\n2026-01-01T00:00:00Z,it,r\x00,1\n",
    b"time,instance_type,region,price\n" + b'"' + b"x" * 200_000 + b'",it,r,1\n',
])
def test_hostile_csv_import_is_exit_1(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "prices.csv"
    path.write_bytes(content)
    result = CliRunner().invoke(main, ["pricing", "import", str(path)])
    assert result.exit_code == 1, result.output
    assert "flowc pricing import: error:" in result.output
    assert PriceStore().latest() == []


def test_stale_journal_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "prices.sqlite3"
    sqlite3.connect(path).close()
    journal = tmp_path / "prices.sqlite3-journal"
    journal.write_bytes(b"")
    journal.chmod(0o644)
    PriceStore(path).latest()
    assert not journal.exists() or stat.S_IMODE(journal.stat().st_mode) == 0o600
