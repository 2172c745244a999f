"""The error taxonomy of the Mithril REST client: one exception class per way a call can fail.

Every error carries a lower-case ``message``, the HTTP ``status`` when there was a response, and a ``help`` line
that says how to fix it. Messages never contain the API key: the client redacts anything derived from a response
or a transport error before it builds an exception.
"""

from __future__ import annotations

from typing import Any

from flowc.diagnostics import UserError

KEY_HELP = "set MITHRIL_API_KEY to a key from https://app.mithril.ai/account/apikeys"


class MithrilApiError(UserError):
    """Base class of every error raised by the Mithril API client.

    It is a :class:`~flowc.diagnostics.UserError`: an unreachable, slow or misbehaving API is a problem of the
    environment, never a bug, so every command that reaches the API exits 1 on it, not 3.

    Args:
        message: What went wrong, lower case, no trailing period.
        status: The HTTP status code, or ``None`` when no response arrived.
        help: How to fix it, or ``None`` when there is nothing useful to say.

    Example:
        >>> err = NotFound("no such instance type 'it_x'", status=404)
        >>> (str(err), err.status, isinstance(err, MithrilApiError))
        ("no such instance type 'it_x'", 404, True)
    """

    def __init__(self, message: str, status: int | None = None, help: str | None = None) -> None:
        """Keep the message, status and help."""
        super().__init__(message)
        self.message = message
        self.status = status
        self.help = help

    def __str__(self) -> str:
        """Return the message alone; renderers print ``help`` on its own line."""
        return self.message

    def __repr__(self) -> str:
        """Return a repr with message, status and help (never headers or credentials)."""
        return f"{type(self).__name__}(message={self.message!r}, status={self.status!r}, help={self.help!r})"


class AuthError(MithrilApiError):
    """The API rejected the credentials (401) or the project access (403)."""


class NotFound(MithrilApiError):
    """The resource or path does not exist (404)."""


class ValidationFailed(MithrilApiError):
    """The API rejected the request parameters (422).

    Args:
        message: What went wrong.
        status: The HTTP status code.
        help: How to fix it.
        detail: The API's FastAPI-style ``detail`` list (``[{loc, msg, type}]``), redacted.
    """

    def __init__(
        self,
        message: str,
        status: int | None = None,
        help: str | None = None,
        detail: Any = None,
    ) -> None:
        """Keep the message, status, help and the API's detail."""
        super().__init__(message, status=status, help=help)
        self.detail = detail


class RateLimited(MithrilApiError):
    """The API kept answering 429 after every retry, or asked for a wait too long to honour.

    Args:
        message: What went wrong.
        status: The HTTP status code.
        help: How to fix it.
        retry_after: The server's ``Retry-After`` in seconds, when it sent one.
    """

    def __init__(
        self,
        message: str,
        status: int | None = None,
        help: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Keep the message, status, help and the server's wait."""
        super().__init__(message, status=status, help=help)
        self.retry_after = retry_after


class ServerError(MithrilApiError):
    """The API answered 5xx after every retry."""


class NetworkError(MithrilApiError):
    """No response arrived: no network, DNS failure, refused connection or timeout."""


class MalformedResponse(MithrilApiError):
    """The API answered 2xx with a body that is not JSON or not the documented shape."""


class CircuitOpen(MithrilApiError):
    """Too many consecutive failures: calls fail fast until the breaker's reset time has passed."""


def format_detail(detail: Any) -> str:
    """Render a FastAPI ``detail`` payload as one line.

    Args:
        detail: ``[{"loc": [...], "msg": str, "type": str}, ...]``, a string, or anything else.

    Returns:
        ``loc.path: msg; ...`` for the list form, else ``str(detail)``.

    Example:
        >>> format_detail([{"loc": ["query", "region"], "msg": "field required", "type": "missing"}])
        'query.region: field required'
    """
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc") or [])
                msg = str(item.get("msg", ""))
                parts.append(f"{loc}: {msg}" if loc else msg)
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return str(detail)
