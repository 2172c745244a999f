"""A small, safe HTTP client for the Mithril REST API: auth, retries with backoff, a circuit breaker, clear errors.

:class:`ApiClient` is the only place flowc talks HTTP to Mithril. GETs are retried on 429 (honouring
``Retry-After``), 5xx and transport errors, with exponential backoff and jitter; after ``breaker_threshold``
consecutive failures the client fails fast with :class:`~.errors.CircuitOpen` for ``breaker_reset_s`` seconds.
The API key never appears in a message, a repr or a log line.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from flowc import __version__
from flowc.providers.mithril.api.errors import (
    KEY_HELP,
    AuthError,
    CircuitOpen,
    MalformedResponse,
    MithrilApiError,
    NetworkError,
    NotFound,
    RateLimited,
    ServerError,
    ValidationFailed,
    format_detail,
)

DEFAULT_BASE_URL = "https://api.mithril.ai"
MAX_RETRY_AFTER_S = 60.0
REDACTED = "***"

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
        timeout: Seconds per request (connect, read, write and pool each).
        retries: Extra attempts after the first for retryable failures (429, 5xx, transport errors).
        backoff_s: Base delay; attempt ``n`` waits ``backoff_s * 2**n`` plus up to 50 % jitter.
        transport: An httpx transport, for tests or proxies.
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
        self.retries = max(0, retries)
        self.backoff_s = backoff_s
        self._sleep = sleep
        self.breaker = CircuitBreaker(breaker_threshold, breaker_reset_s, clock)
        headers = {"Accept": "application/json", "User-Agent": f"flowc/{__version__}"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=httpx.Timeout(timeout), transport=transport
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

        Args:
            path: Path under the base URL, e.g. ``/v2/spot/availability``.
            params: Query parameters; ``None`` values are dropped.

        Returns:
            The decoded JSON value (list, dict, ...).

        Raises:
            AuthError: 401 or 403.
            NotFound: 404.
            ValidationFailed: 422, with the API's ``detail``.
            RateLimited: 429 after every retry, or a ``Retry-After`` longer than a minute.
            ServerError: 5xx after every retry.
            NetworkError: no response (connection error or timeout) after every retry.
            MalformedResponse: a 2xx body that is not JSON.
            CircuitOpen: the breaker is open after too many consecutive failures.
            MithrilApiError: any other non-2xx status.
        """
        query = {k: v for k, v in (params or {}).items() if v is not None}
        last: MithrilApiError | None = None
        for attempt in range(self.retries + 1):
            if self.breaker.is_open():
                raise CircuitOpen(
                    f"mithril api circuit open after {self.breaker.threshold} consecutive failures",
                    help=f"retry in {self.breaker.seconds_left():.0f}s; check your network and the mithril status",
                ) from last
            try:
                return self._attempt(path, query)
            except MithrilApiError as error:
                delay = self._retry_delay(error, attempt)
                if delay is None or attempt == self.retries:
                    raise
                last = error
            log.debug("GET %s failed (%s); retry %d/%d in %.2fs", path, last.message, attempt + 1, self.retries, delay)
            self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _retry_delay(self, error: MithrilApiError, attempt: int) -> float | None:
        """Return the wait before retrying after ``error``, or ``None`` when it is not worth retrying."""
        if isinstance(error, RateLimited) and error.retry_after is not None:
            return error.retry_after if error.retry_after <= MAX_RETRY_AFTER_S else None
        if isinstance(error, NetworkError | ServerError | RateLimited):
            base = self.backoff_s * (2**attempt)
            return base + random.uniform(0, base / 2)
        return None

    def _attempt(self, path: str, query: Mapping[str, Any]) -> Any:
        """Send one GET and return the decoded body, or raise the error it maps to."""
        try:
            response = self._http.get(path, params=query)
        except httpx.TimeoutException as exc:
            self.breaker.record_failure()
            raise NetworkError(
                f"mithril api timed out on GET {path} ({type(exc).__name__})",
                help="check your network, or raise the timeout",
            ) from None
        except httpx.TransportError as exc:
            self.breaker.record_failure()
            raise NetworkError(
                f"cannot reach mithril api at {self.base_url}: {self._redact(str(exc)) or type(exc).__name__}",
                help="check your network, or MITHRIL_API_URL if you set it",
            ) from None
        status = response.status_code
        if status >= 500:
            self.breaker.record_failure()
            raise ServerError(
                f"mithril api answered {status} on GET {path}{self._body_hint(response)}",
                status=status,
                help="the service may be degraded; retry later",
            )
        self.breaker.record_success()
        if status == 429:
            retry_after = _parse_retry_after(response.headers.get("Retry-After"))
            waited = f"; server asked to wait {retry_after:.0f}s" if retry_after else ""
            raise RateLimited(
                f"mithril api rate limit hit on GET {path}{waited}",
                status=status,
                help="wait a minute and retry; avoid running many flowc commands in parallel",
                retry_after=retry_after,
            )
        if status >= 400:
            raise self._client_error(path, response)
        if status == 204 or not response.content:
            return None
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise MalformedResponse(
                f"mithril api sent a body that is not json on GET {path}{self._body_hint(response)}",
                status=status,
                help="check MITHRIL_API_URL points at the api, not a web page or proxy",
            ) from None

    def _client_error(self, path: str, response: httpx.Response) -> MithrilApiError:
        status = response.status_code
        detail = self._detail(response)
        if status == 401:
            help_text = KEY_HELP if not self._api_key else "the key was rejected; check it is current, or " + KEY_HELP
            return AuthError(f"mithril api rejected the credentials on GET {path}", status=status, help=help_text)
        if status == 403:
            return AuthError(
                f"mithril api denied access on GET {path}{_suffix(detail)}",
                status=status,
                help="check that the key's user belongs to the project and has quota; " + KEY_HELP,
            )
        if status == 404:
            return NotFound(f"mithril api has no {path}{_suffix(detail)}", status=status,
                            help="check the instance type, region or id; list them with the api")
        if status == 422:
            raw = self._redact_obj(_json_or_none(response))
            raw_detail = raw.get("detail") if isinstance(raw, dict) else raw
            return ValidationFailed(
                f"mithril api rejected the request GET {path}{_suffix(detail)}",
                status=status,
                help="check the parameters named above",
                detail=raw_detail,
            )
        return MithrilApiError(f"mithril api answered {status} on GET {path}{_suffix(detail)}", status=status)

    def _detail(self, response: httpx.Response) -> str:
        body = _json_or_none(response)
        if isinstance(body, dict) and "detail" in body:
            return self._redact(format_detail(body["detail"]))[:300]
        return self._redact(response.text.strip())[:200]

    def _body_hint(self, response: httpx.Response) -> str:
        text = self._redact(response.text.strip())[:120]
        return f": {text!r}" if text else ""

    def _redact(self, text: str) -> str:
        if self._api_key and self._api_key in text:
            text = text.replace(self._api_key, REDACTED)
        return text

    def _redact_obj(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._redact(value)
        if isinstance(value, list):
            return [self._redact_obj(v) for v in value]
        if isinstance(value, dict):
            return {k: self._redact_obj(v) for k, v in value.items()}
        return value


def _suffix(detail: str) -> str:
    return f": {detail}" if detail else ""


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


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
