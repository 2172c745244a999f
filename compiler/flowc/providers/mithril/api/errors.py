"""The error taxonomy of the Mithril REST client: one exception class per way a call can fail.

Every error carries a lower-case ``message``, the HTTP ``status`` when there was a response, a ``help`` line
that says how to fix it, and ``outcome_unknown``: whether a write (POST, PATCH, DELETE) may have been applied
although it failed. Messages never contain the API key: the client redacts anything derived from a response or a
transport error before it builds an exception. :func:`error_for_status` maps a 4xx answer onto the taxonomy.
"""

from __future__ import annotations

from typing import Any

from flowc.diagnostics import UserError

KEY_HELP = "set MITHRIL_API_KEY to a key from https://app.mithril.ai/account/apikeys"
QUOTA_HELP = "see the project's quotas at https://app.mithril.ai/instances/quotas, or ask mithril for more"
PRICE_WORDS = ("price", "minimum", "insufficient")
"""Words in a 422's ``loc`` or ``msg`` that mean the bid's limit price was refused (``limit_price`` included)."""


class MithrilApiError(UserError):
    """Base class of every error raised by the Mithril API client.

    It is a :class:`~flowc.diagnostics.UserError`: an unreachable, slow or misbehaving API is a problem of the
    environment, never a bug, so every command that reaches the API exits 1 on it, not 3.

    Args:
        message: What went wrong, lower case, no trailing period.
        status: The HTTP status code, or ``None`` when no response arrived.
        help: How to fix it, or ``None`` when there is nothing useful to say.
        outcome_unknown: ``True`` when a write failed after it reached the server (a timeout or a dropped
            connection after sending, or a 5xx), so the server may have applied it: look before sending it again.
            Always ``False`` for a GET, and for an error that proves the write was not applied.

    Example:
        >>> err = NotFound("no such instance type 'it_x'", status=404)
        >>> (str(err), err.status, err.outcome_unknown, isinstance(err, MithrilApiError))
        ("no such instance type 'it_x'", 404, False, True)
    """

    def __init__(
        self, message: str, status: int | None = None, help: str | None = None, *, outcome_unknown: bool = False
    ) -> None:
        """Keep the message, status, help and whether the write's outcome is unknown."""
        super().__init__(message)
        self.message = message
        self.status = status
        self.help = help
        self.outcome_unknown = outcome_unknown

    def __str__(self) -> str:
        """Return the message alone; renderers print ``help`` on its own line."""
        return self.message

    def __repr__(self) -> str:
        """Return a repr with message, status and help (never headers or credentials)."""
        unknown = ", outcome_unknown=True" if self.outcome_unknown else ""
        return f"{type(self).__name__}(message={self.message!r}, status={self.status!r}, help={self.help!r}{unknown})"


class AuthError(MithrilApiError):
    """The API rejected the credentials (401) or the project access (403)."""


class QuotaExceeded(AuthError):
    """The API refused a write because the project's quota is used up (403 whose detail mentions quota)."""


class NotFound(MithrilApiError):
    """The resource or path does not exist (404)."""


class Conflict(MithrilApiError):
    """The request conflicts with the resource's current state (409): a name taken, or a key reused."""


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


class PriceTooLow(ValidationFailed):
    """The API refused a bid's limit price (422 whose ``loc`` or ``msg`` mentions the price or a minimum)."""


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
    """The API answered 5xx after every retry (a POST is never retried; ``outcome_unknown`` is set on writes)."""


class NetworkError(MithrilApiError):
    """No response arrived: no network, DNS failure, refused connection, timeout or a dropped connection."""


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


def error_for_status(
    method: str, path: str, status: int, detail: Any, summary: str, *, has_key: bool
) -> MithrilApiError:
    """Return the error for a 4xx answer other than 429 (which the client handles with its retries).

    Args:
        method: The request's method, upper case.
        path: The request's path.
        status: The HTTP status, 400 to 499.
        detail: The answer's ``detail`` value (or whole body when it has none), already redacted.
        summary: One printable, redacted line of the answer for the message, or ``""``.
        has_key: Whether the request carried an API key (a 401 without one says to set it).

    Returns:
        :class:`AuthError` (401, 403), :class:`QuotaExceeded` (403 about quota), :class:`NotFound` (404),
        :class:`Conflict` (409), :class:`PriceTooLow` (422 about the price), :class:`ValidationFailed` (other 422),
        else a plain :class:`MithrilApiError`.

    Example:
        >>> detail = [{"loc": ["body", "limit_price"], "msg": "below the minimum", "type": "value_error"}]
        >>> err = error_for_status("POST", "/v2/spot/bids", 422, detail, format_detail(detail), has_key=True)
        >>> type(err).__name__, err.detail[0]["loc"]
        ('PriceTooLow', ['body', 'limit_price'])
        >>> str(err)
        'mithril api rejected the request POST /v2/spot/bids: body.limit_price: below the minimum'
    """
    request = f"{method} {path}"
    tail = f": {summary}" if summary else ""
    if status == 401:
        help_text = "the key was rejected; check it is current, or " + KEY_HELP if has_key else KEY_HELP
        return AuthError(f"mithril api rejected the credentials on {request}", status=status, help=help_text)
    if status == 403:
        if "quota" in summary.lower():
            return QuotaExceeded(f"mithril api quota exceeded on {request}{tail}", status=status, help=QUOTA_HELP)
        return AuthError(
            f"mithril api denied access on {request}{tail}",
            status=status,
            help="check that the key's user belongs to the project and has quota; " + KEY_HELP,
        )
    if status == 404:
        return NotFound(f"mithril api has no {path}{tail}", status=status,
                        help="check the instance type, region or id; list them with the api")
    if status == 409:
        return Conflict(f"mithril api reported a conflict on {request}{tail}", status=status,
                        help="the name may be taken, or the idempotency key used for another request; list and retry")
    if status == 422:
        if _mentions_price(detail):
            return PriceTooLow(f"mithril api rejected the request {request}{tail}", status=status, detail=detail,
                               help="raise the limit price; 'flowc pricing' shows the current market")
        return ValidationFailed(f"mithril api rejected the request {request}{tail}", status=status, detail=detail,
                                help="check the parameters named above")
    return MithrilApiError(f"mithril api answered {status} on {request}{tail}", status=status)


def _mentions_price(detail: Any) -> bool:
    """Return whether a 422 ``detail`` names the price: in an item's ``loc`` or ``msg``, or in a plain string."""
    items = detail if isinstance(detail, list) else [detail]
    for item in items:
        if isinstance(item, dict):
            loc = item.get("loc")
            words = [*(loc if isinstance(loc, list) else [loc]), item.get("msg")]
        else:
            words = [item]
        text = " ".join(str(w) for w in words if w is not None).lower()
        if any(word in text for word in PRICE_WORDS):
            return True
    return False
