r"""Find and hide the API key in text a server sent back, in whatever encoding it was echoed.

A server (or a proxy) that echoes the ``Authorization`` header may escape it: JSON ``\u0066key…``, URL
``%66key…``, HTML ``&#102;key…``, base64 of the header or of ``user:key``. Replacing only the verbatim key let such
echoes through (issue 11). :class:`Redactor` replaces the verbatim key and its base64 forms, then decodes each of
those escapes in turn and, when a decoded text reveals the key, keeps that decoded text with the key replaced.
The result may lose some of the echo's original escaping; it never holds the key.
"""

from __future__ import annotations

import base64
import html
import re
from urllib.parse import unquote_plus

REDACTED = "***"
_ESCAPES = 3
"""How many layers of escaping are peeled (a percent-encoded JSON echo is two)."""

_JSON_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|([\"\\/bfnrt]))")
_UNICODE_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
_JSON_SIMPLE = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _json_unescape(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        return chr(int(match[1], 16)) if match[1] else _JSON_SIMPLE[match[2]]

    return _JSON_ESCAPE.sub(one, text)


def _unicode_unescape(text: str) -> str:
    r"""Decode ``\uXXXX`` escapes alone, wherever they are, even after a stray backslash that JSON would pair."""
    return _UNICODE_ESCAPE.sub(lambda match: chr(int(match[1], 16)), text)


def _base64_forms(secret: str) -> list[str]:
    """Return the base64 texts that appear wherever ``secret`` is base64-encoded, at any byte alignment.

    Inside a longer encoded text the first and last characters of the secret's part depend on its neighbours,
    so each alignment keeps only the characters the secret alone decides.

    Example:
        >>> "c2VjcmV0LWtle" in _base64_forms("secret-key")
        True
    """
    data = secret.encode("utf-8")
    forms = set()
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + data)
        start = (shift * 8 + 5) // 6  # characters that mix in the padding bytes
        end = ((shift + len(data)) * 8) // 6  # characters fully inside the secret
        core = encoded[start:end].decode("ascii")
        if len(core) >= 8:
            forms.add(core)
            forms.add(core.replace("+", "-").replace("/", "_"))
    return sorted(forms, key=len, reverse=True)


class Redactor:
    r"""Hide one secret, and its encoded echoes, in text and in decoded JSON values.

    Args:
        secret: The API key; ``None`` or empty makes every method a no-op.

    Example:
        >>> r = Redactor("fkey_0123456789")
        >>> r.text('detail: "\\u0066key_0123456789" and %66key%5F0123456789')
        'detail: "***" and ***'
        >>> r.carries(base64.b64encode(b"user:fkey_0123456789").decode()), r.carries("fkey_other")
        (True, False)
    """

    def __init__(self, secret: str | None) -> None:
        """Precompute the base64 forms of ``secret``."""
        self._secret = secret or None
        self._forms = [secret, *_base64_forms(secret)] if secret else []

    def carries(self, text: str) -> bool:
        """Return whether ``text`` holds the secret verbatim, base64-encoded or behind up to three escapes."""
        return self._secret is not None and self.text(text) != text

    def text(self, text: str) -> str:
        """Return ``text`` with every echo of the secret replaced by ``***``."""
        if self._secret is None:
            return text
        return self._peel(text, _ESCAPES)

    def value(self, value: object) -> object:
        """Return a decoded JSON value with every string, object keys included, passed through :meth:`text`.

        The value must be at most a few dozen levels deep (the client's decoder guarantees it).
        """
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {self.text(k) if isinstance(k, str) else k: self.value(v) for k, v in value.items()}
        return value

    def _peel(self, text: str, layers: int) -> str:
        for form in self._forms:
            text = text.replace(form, REDACTED)
        if layers == 0:
            return text
        for decode in (_json_unescape, _unicode_unescape, unquote_plus, html.unescape):
            decoded = decode(text)
            if decoded != text:
                redacted = self._peel(decoded, layers - 1)
                if redacted != decoded:  # the escape hid the secret: keep the decoded, redacted text
                    return self._peel(redacted, layers - 1)
        return text
