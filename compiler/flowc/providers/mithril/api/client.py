"""A small, safe HTTP client for the Mithril REST API: auth, retries with backoff, a circuit breaker, clear errors.

:class:`ApiClient` is the only place flowc talks HTTP to Mithril; every request goes through
:meth:`ApiClient.send_json`. GET, PATCH and DELETE are retried on 429 (honouring ``Retry-After``), 5xx and transport
errors, with exponential backoff and jitter. A POST creates something, so it is retried only when the server cannot
have processed it (429, or no connection made), with the same ``Idempotency-Key``; any other failure of a write
after it was sent raises at once with ``outcome_unknown`` set. After ``breaker_threshold`` consecutive failures the
client fails fast with :class:`~.errors.CircuitOpen` for ``breaker_reset_s`` seconds.

Deadlines: ``timeout`` bounds each socket operation, ``deadline_s`` one attempt from connect to the last body byte,
and ``total_deadline_s`` the whole call with its retries and backoff waits; a server that trickles its answer
ends in :class:`~.errors.NetworkError` when the attempt's deadline passes (see :mod:`.deadline`). Bodies are
read up to :data:`MAX_BODY_BYTES` and decoded by :func:`.body.decode_json`, so a body of any shape, size or
depth ends in a :class:`~.errors.MithrilApiError`.

The API key never appears in a message, a repr or a log line, in any encoding a server echoes it in
(:mod:`.redact`), and a successful answer that carries the key is refused, so nothing downstream stores it. Log
lines name the method, path and status only: never a header, a query or a request body (a bid's startup script).
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from flowc import __version__
from flowc.providers.mithril.api.body import BodyError, decode_json, walk_strings
from flowc.providers.mithril.api.deadline import DeadlineBackend, DeadlineTransport, environment_proxy
from flowc.providers.mithril.api.errors import (
    CircuitOpen,
    MalformedResponse,
    MithrilApiError,
    NetworkError,
    RateLimited,
    ServerError,
    error_for_status,
    format_detail,
)
from flowc.providers.mithril.api.redact import REDACTED, Redactor

DEFAULT_BASE_URL = "https://api.mithril.ai"
MAX_RETRY_AFTER_S = 60.0
MAX_BODY_BYTES = 16 * 1024 * 1024
"""Largest successful body read; the documented answers are a few hundred KiB at most."""
MAX_ERROR_BODY_BYTES = 64 * 1024
"""How much of an error answer is read for its detail; the rest is ignored."""
METHODS = ("GET", "POST", "PATCH", "DELETE")
MAY_HAVE_APPLIED = "; the server may have applied it"
UNKNOWN_OUTCOME_HELP = (
    "check whether it took effect (list the bids or volumes) before sending it again; "
    "a create sent again with the same idempotency key is not applied twice"
)

_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol, httpx.ProxyError)
"""Transport errors raised before any byte of the request left: the server cannot have seen the request."""
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")

__all__ = ["REDACTED", "ApiClient", "CircuitBreaker"]

log = logging.getLogger(__name__)


class CircuitBreaker:
    """Count consecutive failures and refuse calls for a while once there are too many.

    After ``threshold`` consecutive failures the breaker opens for ``reset_s`` seconds. When that time has
    passed one trial call goes through: success closes the breaker, failure opens it again at once.

    Args:
        threshold: Consecutive failures that open the breaker.
        reset_s: Seconds the breaker stays open.
        clock: Monotonic clock, injectable for tests.

    Example:
        >>> now = [0.0]
        >>> breaker = CircuitBreaker(threshold=2, reset_s=10, clock=lambda: now[0])
        >>> breaker.record_failure(); breaker.record_failure()
        >>> breaker.is_open()
        True
        >>> now[0] = 11.0
        >>> breaker.is_open()
        False
    """

    def __init__(self, threshold: int = 5, reset_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        """Start closed, with no failures counted."""
        self.threshold = threshold
        self.reset_s = reset_s
        self._clock = clock
        self._failures = 0
        self._open_until: float | None = None
        self._lock = threading.Lock()

    def is_open(self) -> bool:
        """Return whether calls should fail fast right now."""
        with self._lock:
            return self._open_until is not None and self._clock() < self._open_until

    def seconds_left(self) -> float:
        """Return the seconds until the breaker lets a trial call through (0 when closed)."""
        with self._lock:
            if self._open_until is None:
                return 0.0
            return max(0.0, self._open_until - self._clock())

    def record_success(self) -> None:
        """Close the breaker and forget past failures."""
        with self._lock:
            self._failures = 0
            self._open_until = None

    def record_failure(self) -> None:
        """Count one failure and open the breaker when the threshold is reached."""
        with self._lock:
            self._failures += 1
            if self.threshold > 0 and self._failures >= self.threshold:
                self._open_until = self._clock() + self.reset_s


class ApiClient:
    """Authenticated JSON client for ``https://api.mithril.ai`` (or ``MITHRIL_API_URL``).

    Args:
        base_url: API root; defaults to env ``MITHRIL_API_URL``, then ``https://api.mithril.ai``.
        api_key: Bearer key; defaults to env ``MITHRIL_API_KEY``. Without one, requests go out unauthenticated
            and a 401 explains how to set it.
        timeout: Seconds per socket operation (connect, each read, each write, pool wait).
        deadline_s: Seconds one attempt may take in all, from connect to the last body byte.
        total_deadline_s: Seconds :meth:`send_json` may take in all, retries and backoff waits included; a retry
            whose wait would end past it is not made.
        retries: Extra attempts after the first for retryable failures (429, 5xx, transport errors; a POST only on
            429 and connection failures).
        backoff_s: Base delay; attempt ``n`` waits ``backoff_s * 2**n`` plus up to 50 % jitter.
        transport: An httpx transport, for tests or proxies. Without one, a :class:`.deadline.DeadlineTransport`
            holds every socket operation to the deadlines; a transport of your own gets the deadlines checked
            only between body chunks.
        sleep: Called with each delay in seconds; inject a recorder in tests.
        breaker_threshold: Consecutive failed requests that open the circuit breaker (0 disables it).
        breaker_reset_s: Seconds the breaker stays open.
        clock: Monotonic clock for the breaker, injectable for tests.

    Example:
        >>> client = ApiClient("http://localhost:9", api_key="fkey_secret")
        >>> "fkey_secret" in repr(client)
        False
        >>> client.close()
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 10.0,
        deadline_s: float = 20.0,
        total_deadline_s: float = 30.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        breaker_threshold: int = 5,
        breaker_reset_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Resolve the base URL and key, and open an httpx connection pool (no request is sent)."""
        self.base_url = (base_url or os.environ.get("MITHRIL_API_URL") or DEFAULT_BASE_URL).rstrip("/")
        self._api_key = api_key or os.environ.get("MITHRIL_API_KEY") or None
        self._redactor = Redactor(self._api_key)
        self.deadline_s = deadline_s
        self.total_deadline_s = total_deadline_s
        self.retries = max(0, retries)
        self.backoff_s = backoff_s
        self._sleep = sleep
        self.breaker = CircuitBreaker(breaker_threshold, breaker_reset_s, clock)
        # identity: a compressed body could expand far beyond MAX_BODY_BYTES inside one chunk.
        headers = {"Accept": "application/json", "Accept-Encoding": "identity", "User-Agent": f"flowc/{__version__}"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        self._backend = DeadlineBackend()
        if transport is None:  # the environment's proxy, if any, is reached through the deadline too
            transport = DeadlineTransport(self._backend, environment_proxy(self.base_url))
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout),
            transport=transport,
            trust_env=False,  # proxies are the transport's; certificates and netrc are not used by the API
        )

    def __repr__(self) -> str:
        """Return a repr that shows whether a key is set, never the key."""
        key = REDACTED if self._api_key else None
        return f"ApiClient(base_url={self.base_url!r}, api_key={key!r})"

    def __enter__(self) -> ApiClient:
        """Return self; the connection pool closes on exit."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the connection pool."""
        self.close()

    def close(self) -> None:
        """Close the underlying connection pool."""
        self._http.close()

    @property
    def has_key(self) -> bool:
        """Whether an API key was given or found in the environment."""
        return self._api_key is not None

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET ``path`` and return the decoded JSON body, retrying transient failures.

        The same as ``send_json("GET", path, params=params)``; see :meth:`send_json` for the errors.

        Args:
            path: Path under the base URL, e.g. ``/v2/spot/availability``.
            params: Query parameters; ``None`` values are dropped.

        Returns:
            The decoded JSON value (list, dict, ...), or ``None`` for 204 or an empty body.
        """
        return self.send_json("GET", path, params=params)

    def send_json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """Send one request with an optional JSON body and return the decoded JSON answer.

        GET, PATCH and DELETE are retried on 429, 5xx and transport errors. A POST is retried only when the server
        cannot have processed it, on 429 and on a failure to connect, and then with the same ``Idempotency-Key``;
        after a timeout, a dropped connection or a 5xx it raises at once, since only the caller can tell whether
        sending it again is safe. An error of a write that may have been applied says so and has
        ``outcome_unknown`` set.

        Args:
            method: ``GET``, ``POST``, ``PATCH`` or ``DELETE`` (any case).
            path: Path under the base URL, e.g. ``/v2/spot/bids``.
            params: Query parameters; ``None`` values are dropped, a list value is sent once per item.
            body: A JSON value sent as ``application/json``; ``None`` sends no body.
            idempotency_key: Sent as the ``Idempotency-Key`` header: 1 to 255 printable ASCII characters.

        Returns:
            The decoded JSON value, or ``None`` for 204 or an empty body.

        Raises:
            AuthError: 401 or 403; :class:`~.errors.QuotaExceeded` when a 403 is about quota.
            NotFound: 404.
            Conflict: 409.
            ValidationFailed: 422, with the API's ``detail``; :class:`~.errors.PriceTooLow` when it is about price.
            RateLimited: 429 after every retry, or a ``Retry-After`` longer than a minute.
            ServerError: 5xx after every retry (at once for a POST, with ``outcome_unknown``).
            NetworkError: no complete response (connection error, timeout, deadline passed) after every retry;
                ``outcome_unknown`` when a write was sent before it failed.
            MalformedResponse: a 2xx body that is not JSON within :func:`.body.decode_json`'s limits, is larger
                than :data:`MAX_BODY_BYTES`, or carries the API key.
            CircuitOpen: the breaker is open after too many consecutive failures.
            MithrilApiError: any other non-2xx status.
            ValueError: an unknown method, a ``body`` that is not JSON (``NaN`` included) or an unusable
                ``idempotency_key``: a bug of the caller, not of the environment.
        """
        request = _Request.build(method, path, params, body, idempotency_key)
        last: MithrilApiError | None = None
        give_up_at = time.monotonic() + self.total_deadline_s
        for attempt in range(self.retries + 1):
            if self.breaker.is_open():
                raise CircuitOpen(
                    f"mithril api circuit open after {self.breaker.threshold} consecutive failures",
                    help=f"retry in {self.breaker.seconds_left():.0f}s; check your network and the mithril status",
                    outcome_unknown=last is not None and last.outcome_unknown,
                ) from last
            try:
                return self._attempt(request, min(give_up_at, time.monotonic() + self.deadline_s))
            except MithrilApiError as error:
                delay = self._retry_delay(request, error, attempt)
                if delay is None or attempt == self.retries or time.monotonic() + delay >= give_up_at:
                    if last is not None and last.outcome_unknown and not error.outcome_unknown:
                        error.outcome_unknown = True  # the earlier attempt's fate still stands
                        error.message += "; an earlier attempt may have been applied"
                        error.args = (error.message,)
                    raise
                last = error
            log.debug("%s %s failed (%s, status %s); retry %d/%d in %.2fs", request.method, request.path,
                      type(last).__name__, last.status, attempt + 1, self.retries, delay)
            self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _retry_delay(self, request: _Request, error: MithrilApiError, attempt: int) -> float | None:
        """Return the wait before retrying after ``error``, or ``None`` when it is not worth or not safe to retry."""
        if request.method == "POST" and (error.outcome_unknown or isinstance(error, ServerError)):
            return None  # the server may have processed it: sending it again could create a second resource
        if isinstance(error, RateLimited) and error.retry_after is not None:
            return error.retry_after if error.retry_after <= MAX_RETRY_AFTER_S else None
        if isinstance(error, NetworkError | ServerError | RateLimited):
            base = self.backoff_s * (2**attempt)
            return base + random.uniform(0, base / 2)
        return None

    def _attempt(self, request: _Request, deadline: float) -> Any:
        """Send ``request`` once, ending by ``deadline`` (a ``time.monotonic()`` value); return the decoded body."""
        label = request.label
        try:
            with self._backend.until(deadline), self._http.stream(
                request.method, request.path, params=request.query, content=request.content, headers=request.headers
            ) as response:
                status = response.status_code
                log.debug("%s %s answered %d", request.method, request.path, status)
                limit = MAX_BODY_BYTES if status < 400 else MAX_ERROR_BODY_BYTES
                raw = _read_body(response, limit, deadline)
        except httpx.TimeoutException as exc:
            self.breaker.record_failure()
            raise self._timed_out(request, type(exc).__name__, sent=not isinstance(exc, _NOT_SENT)) from None
        except httpx.TransportError as exc:
            self.breaker.record_failure()
            raise self._unreachable(request, exc) from None
        except _DeadlinePassed:
            self.breaker.record_failure()
            raise self._timed_out(request, "deadline", sent=True) from None
        except _Unreadable as exc:
            if status < 400:
                raise MalformedResponse(
                    f"mithril api sent {exc} on {label}{_applied(request, status)}",
                    status=status,
                    help="check MITHRIL_API_URL points at the api, not a file server or proxy",
                ) from None
            raw = None  # an error answer is judged by its status; its detail is only a hint
        if status >= 500:
            self.breaker.record_failure()
            if request.is_write:
                raise ServerError(f"mithril api answered {status} on {label}{self._body_hint(raw)}{MAY_HAVE_APPLIED}",
                                  status=status, help=UNKNOWN_OUTCOME_HELP, outcome_unknown=True)
            raise ServerError(f"mithril api answered {status} on {label}{self._body_hint(raw)}", status=status,
                              help="the service may be degraded; retry later")
        self.breaker.record_success()
        if status == 429:
            retry_after = _parse_retry_after(response.headers.get("Retry-After"))
            waited = f"; server asked to wait {retry_after:.0f}s" if retry_after else ""
            raise RateLimited(
                f"mithril api rate limit hit on {label}{waited}",
                status=status,
                help="wait a minute and retry; avoid running many flowc commands in parallel",
                retry_after=retry_after,
            )
        if status >= 400:
            body = _json_or_none(raw)
            detail = body.get("detail") if isinstance(body, dict) else body
            summary = self._detail(body, raw)
            raise error_for_status(request.method, request.path, status, self._redactor.value(detail), summary,
                                   has_key=self._api_key is not None)
        if status == 204 or not raw:
            return None
        try:
            body = decode_json(raw)
        except BodyError as exc:
            raise MalformedResponse(
                f"mithril api sent a body that is not usable json on {label}: {exc}{self._body_hint(raw)}"
                f"{_applied(request, status)}",
                status=status,
                help="check MITHRIL_API_URL points at the api, not a web page or proxy",
            ) from None
        if self._api_key and any(self._redactor.carries(text) for text in walk_strings(body)):
            raise MalformedResponse(
                f"mithril api echoed the api key in its answer on {label}; nothing of it was used or stored"
                f"{_applied(request, status)}",
                status=status,
                help="report this to mithril support; if a proxy sits between, check it",
            )
        return body

    def _timed_out(self, request: _Request, why: str, *, sent: bool) -> NetworkError:
        unknown = sent and request.is_write
        return NetworkError(
            f"mithril api timed out on {request.label} ({why}; each attempt has {self.deadline_s:g}s, "
            f"the call {self.total_deadline_s:g}s in all){MAY_HAVE_APPLIED if unknown else ''}",
            help=UNKNOWN_OUTCOME_HELP if unknown else "check your network, or retry later",
            outcome_unknown=unknown,
        )

    def _unreachable(self, request: _Request, exc: httpx.TransportError) -> NetworkError:
        reason = self._clean(str(exc)) or type(exc).__name__
        if request.is_write and not isinstance(exc, _NOT_SENT):
            return NetworkError(
                f"mithril api dropped the connection on {request.label} after it was sent ({reason})"
                f"{MAY_HAVE_APPLIED}",
                help=UNKNOWN_OUTCOME_HELP,
                outcome_unknown=True,
            )
        return NetworkError(
            f"cannot reach mithril api at {self.base_url}: {reason}",
            help="check your network, or MITHRIL_API_URL if you set it",
        )

    def _detail(self, body: Any, raw: bytes | None) -> str:
        if isinstance(body, dict) and "detail" in body:
            return self._clean(format_detail(body["detail"]))[:300]
        return self._clean(_text(raw).strip())[:200]

    def _body_hint(self, raw: bytes | None) -> str:
        text = self._redactor.text(_text(raw).strip()[:2000])[:120]
        return f": {text!r}" if text else ""

    def _clean(self, text: str) -> str:
        """Redact the key, then escape control characters so a server cannot drive the terminal."""
        return "".join(c if c.isprintable() else repr(c)[1:-1] for c in self._redactor.text(text))


@dataclass(frozen=True)
class _Request:
    """One request as every attempt sends it: the body is encoded once, so a retry sends the same bytes."""

    method: str
    path: str
    query: dict[str, Any]
    content: bytes | None
    headers: dict[str, str]

    @classmethod
    def build(
        cls, method: str, path: str, params: Mapping[str, Any] | None, body: Any, idempotency_key: str | None
    ) -> _Request:
        """Check the method and key, drop ``None`` parameters and encode ``body`` as compact JSON.

        Raises:
            ValueError: An unknown method, a body that is not JSON, or a key that is not 1 to 255 printable ASCII
                characters (a header value must not carry a line break).
        """
        method = method.upper()
        if method not in METHODS:
            raise ValueError(f"unsupported method {method!r}; use one of {', '.join(METHODS)}")
        headers: dict[str, str] = {}
        content = None
        if body is not None:
            content = json.dumps(body, separators=(",", ":"), allow_nan=False).encode("ascii")
            headers["Content-Type"] = "application/json"
        if idempotency_key is not None:
            if not _IDEMPOTENCY_KEY.fullmatch(idempotency_key):
                raise ValueError("an idempotency key must be 1 to 255 printable ascii characters without spaces")
            headers["Idempotency-Key"] = idempotency_key
        query = {k: v for k, v in (params or {}).items() if v is not None}
        return cls(method, path, query, content, headers)

    @property
    def label(self) -> str:
        """``METHOD /path``, as messages name the request (never the query or the body)."""
        return f"{self.method} {self.path}"

    @property
    def is_write(self) -> bool:
        """Whether the request may change state on the server."""
        return self.method != "GET"


def _applied(request: _Request, status: int) -> str:
    """Say that a write answered 2xx was applied although its answer is unusable (empty for a GET)."""
    return f" (it answered {status}: the {request.method} was applied)" if request.is_write else ""


class _DeadlinePassed(Exception):
    """The attempt's deadline passed between two body chunks."""


class _Unreadable(Exception):
    """The body is longer than the limit for its status, or compressed; ``str()`` says which."""


def _read_body(response: httpx.Response, limit: int, deadline: float) -> bytes:
    """Read the raw body chunk by chunk, up to ``limit`` bytes and until ``deadline``.

    Raises:
        _Unreadable: ``Content-Length`` or the bytes received exceed ``limit``, or the body is compressed.
        _DeadlinePassed: The deadline passed between chunks (the transport's own check covers a stalled read).
    """
    declared = response.headers.get("Content-Length", "")
    too_large = f"a body larger than {limit // 1024} KiB"
    if declared.isdigit() and len(declared) < 20 and int(declared) > limit:
        raise _Unreadable(too_large)
    if response.headers.get("Content-Encoding", "identity").strip().lower() not in ("", "identity"):
        # flowc asked for identity; a compressed body's real size is unknown until it is inflated.
        raise _Unreadable("a compressed body although flowc asked for none")
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_raw():
        size += len(chunk)
        if size > limit:
            raise _Unreadable(too_large)
        chunks.append(chunk)
        if time.monotonic() >= deadline:
            raise _DeadlinePassed
    return b"".join(chunks)


def _suffix(detail: str) -> str:
    return f": {detail}" if detail else ""


def _json_or_none(raw: bytes | None) -> Any:
    try:
        return decode_json(raw) if raw else None
    except BodyError:
        return None


def _text(raw: bytes | None) -> str:
    return raw.decode("utf-8", "replace") if raw else ""


def _parse_retry_after(value: str | None) -> float | None:
    """Parse a ``Retry-After`` header given in seconds; HTTP dates fall back to backoff (``None``).

    Example:
        >>> _parse_retry_after("2"), _parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), _parse_retry_after(None)
        (2.0, None, None)
    """
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return max(0.0, seconds)
