"""An httpx transport whose every socket operation ends by the calling thread's deadline.

httpx's ``timeout`` bounds each socket operation, not a request: a server that sends one byte every two seconds
never trips a ten-second read timeout, so a request could last forever (issue 11). :class:`DeadlineTransport`
runs httpcore over :class:`DeadlineBackend`, which clamps the timeout of every connect, TLS handshake, read and
write to the time left before the deadline set with :meth:`DeadlineBackend.until`, and raises httpcore's timeout
error once none is left. A request therefore ends by its deadline, with httpx's ``TimeoutException``, however its
headers or body trickle in. Name resolution (``getaddrinfo``) cannot be interrupted and is the one step outside
the bound; a request that waits for a free pooled connection is bounded by httpx's pool timeout instead.

A proxy from the environment (``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY``, minus ``NO_PROXY``;
:func:`environment_proxy`) is reached over the same backend, so the deadline holds through it too.
"""

from __future__ import annotations

import ssl
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's blocking socket backend with a per-thread deadline on every operation.

    The deadline lives in a thread-local, so one client shared by several threads gives each request its own;
    a thread with no deadline set gets the plain per-operation timeouts.

    Example:
        >>> backend = DeadlineBackend()
        >>> with backend.until(time.monotonic() - 1):
        ...     backend.connect_tcp("127.0.0.1", 9)
        Traceback (most recent call last):
        httpcore.ConnectTimeout: deadline passed before connect
    """

    def __init__(self, clock: Any = time.monotonic) -> None:
        """Wrap a fresh :class:`httpcore.SyncBackend`; ``clock`` is the monotonic clock deadlines are read on."""
        self._inner = httpcore.SyncBackend()
        self._clock = clock
        self._local = threading.local()

    @contextmanager
    def until(self, deadline: float) -> Iterator[None]:
        """Apply ``deadline`` (a ``clock()`` value) to this thread's socket operations inside the block."""
        previous = getattr(self._local, "deadline", None)
        self._local.deadline = deadline
        try:
            yield
        finally:
            self._local.deadline = previous

    def clamp(self, timeout: float | None, error: type[Exception], what: str) -> float | None:
        """Return ``timeout`` shortened to the time left, or raise ``error`` when the deadline has passed.

        A zero or negative socket timeout would switch the socket to non-blocking mode, so an exhausted deadline
        raises instead of passing 0 down.
        """
        deadline = getattr(self._local, "deadline", None)
        if deadline is None:
            return timeout
        left = deadline - self._clock()
        if left <= 0:
            raise error(f"deadline passed before {what}")
        return left if timeout is None else min(timeout, left)

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        """Connect within the deadline and return a stream that keeps to it."""
        timeout = self.clamp(timeout, httpcore.ConnectTimeout, "connect")
        stream = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _DeadlineStream(stream, self)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        """Connect to a unix socket within the deadline."""
        timeout = self.clamp(timeout, httpcore.ConnectTimeout, "connect")
        return _DeadlineStream(self._inner.connect_unix_socket(path, timeout, socket_options), self)

    def sleep(self, seconds: float) -> None:
        """Sleep (httpcore uses this only between connection retries, which flowc does not configure)."""
        self._inner.sleep(seconds)


class _DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose reads, writes and TLS handshake are clamped by its backend's deadline."""

    def __init__(self, inner: httpcore.NetworkStream, backend: DeadlineBackend) -> None:
        self._inner = inner
        self._backend = backend

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._backend.clamp(timeout, httpcore.ReadTimeout, "read"))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._backend.clamp(timeout, httpcore.WriteTimeout, "write"))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        timeout = self._backend.clamp(timeout, httpcore.ConnectTimeout, "tls handshake")
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, timeout), self._backend)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class DeadlineTransport(httpx.HTTPTransport):
    """httpx's HTTP/1.1 transport running over a :class:`DeadlineBackend`.

    httpx does not take a network backend, so the connection pool is rebuilt with one; the request mapping and
    the translation of httpcore's errors into httpx's stay httpx's own.

    Args:
        backend: The backend whose deadline every connection of this transport keeps.
        proxy: An ``http://`` or ``https://`` proxy URL to send every request through (``None``: direct).
    """

    def __init__(self, backend: DeadlineBackend, proxy: str | None = None) -> None:
        """Build the pool over ``backend`` with httpx's default TLS context and limits.

        Raises:
            ValueError: On a proxy that is not ``http://`` or ``https://``.
        """
        ssl_context = httpx.create_ssl_context()
        super().__init__(verify=ssl_context)
        self._pool.close()  # the default pool never opened a connection; it is replaced, not leaked
        limits = {"max_connections": 100, "max_keepalive_connections": 20, "keepalive_expiry": 5.0}
        if proxy is None:
            self._pool = httpcore.ConnectionPool(ssl_context=ssl_context, network_backend=backend, **limits)
            return
        url = httpx.URL(proxy)
        if url.scheme not in ("http", "https"):
            raise ValueError(f"proxy '{url.copy_with(username=None, password=None)}' is not http:// or https://")
        auth = (url.username, url.password) if url.username else None
        self._pool = httpcore.HTTPProxy(
            proxy_url=httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=b"/"),
            proxy_auth=auth, ssl_context=ssl_context, network_backend=backend, **limits)


def environment_proxy(url: str, environ: dict[str, str] | None = None) -> str | None:
    """The proxy the environment names for ``url`` (``<scheme>_proxy``, then ``all_proxy``; ``no_proxy`` wins).

    Args:
        url: The URL to be fetched.
        environ: Variables to read instead of the process environment.

    Returns:
        The proxy URL, or ``None`` to connect directly.

    Example:
        >>> environment_proxy("https://api.mithril.ai", {"HTTPS_PROXY": "http://proxy:3128"})
        'http://proxy:3128'
        >>> environment_proxy("https://api.mithril.ai", {"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": ".mithril.ai"})
    """
    parts = urllib.parse.urlsplit(url)
    if environ is None:
        proxies = urllib.request.getproxies_environment()
    else:
        proxies = {key.lower()[:-6]: value for key, value in environ.items()
                   if key.lower().endswith("_proxy") and value}
    if not parts.hostname or urllib.request.proxy_bypass_environment(parts.hostname, proxies):
        return None
    return proxies.get(parts.scheme) or proxies.get("all")
