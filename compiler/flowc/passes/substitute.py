"""Pass ``substitute``: Document → Document with ``${VAR}`` and ``${VAR:-default}`` replaced.

Values come from the context's environment. ``$$`` writes a literal ``$``. A plain (unquoted) scalar
that is re-typed after substitution (``num_instances: ${N}`` with ``N=4`` becomes the integer 4), so
variables can fill numeric and boolean fields. Emits FLC110 (undefined variable) and FLC111
(malformed reference).
"""

from __future__ import annotations

import re
from typing import Any

from flowc.model.context import Context
from flowc.model.document import Document, Path

_REF = re.compile(r"\$\$|\$\{([^}]*)\}|\$\{")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_INT = re.compile(r"[-+]?[0-9]+\Z")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z")


def substitute(doc: Document, ctx: Context) -> Document:
    r"""Replace environment references in every string scalar of the document.

    Args:
        doc: The parsed document.
        ctx: The context; ``ctx.environ`` supplies the values.

    Returns:
        The document with references replaced (unchanged when it has none).

    Example:
        >>> from flowc.passes.parse import parse
        >>> ctx = Context("t.yaml", environ={"N": "4"})
        >>> substitute(parse("num_instances: ${N}\nimage: ${IMG:-ubuntu}\n", ctx), ctx).data
        {'num_instances': 4, 'image': 'ubuntu'}
    """
    walker = _Walker(doc, ctx)
    data = walker.walk(doc.data, ())
    if not walker.changed:
        return doc
    return doc.replace_data(data, frozenset(doc.plain - walker.retyped))


class _Walker:
    def __init__(self, doc: Document, ctx: Context) -> None:
        self.doc = doc
        self.ctx = ctx
        self.changed = False
        self.retyped: set[Path] = set()

    def walk(self, value: Any, path: Path) -> Any:
        if isinstance(value, dict):
            return {key: self.walk(item, (*path, key)) for key, item in value.items()}
        if isinstance(value, list):
            return [self.walk(item, (*path, index)) for index, item in enumerate(value)]
        if isinstance(value, str) and "$" in value:
            return self.expand(value, path)
        return value

    def expand(self, text: str, path: Path) -> Any:
        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            body = match.group(1)
            if body is None:
                self.fail_malformed(text, path)
                return ""
            name, sep, default = body.partition(":-")
            if not _NAME.match(name):
                self.fail_malformed(text, path)
                return ""
            if name in self.ctx.environ:
                return self.ctx.environ[name]
            if sep:
                return default
            self.ctx.error("FLC110", f"environment variable '{name}' is not set",
                           at=self.doc.span(path),
                           help=f"export {name}=..., or give a default: '${{{name}:-value}}'")
            return ""

        result = _REF.sub(replace, text)
        self.changed = True
        if path in self.doc.plain:
            self.retyped.add(path)
            return _retype(result)
        return result

    def fail_malformed(self, text: str, path: Path) -> None:
        self.ctx.error("FLC111", f"malformed variable reference in '{text}'", at=self.doc.span(path),
                       help="write '${NAME}' or '${NAME:-default}', and '$$' for a literal '$'")


def _retype(text: str) -> Any:
    """Type a substituted plain scalar the way YAML 1.2 would have typed the same text."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "~", ""):
        return None if lowered != "" else ""
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text) and any(ch.isdigit() for ch in text):
        return float(text)
    return text
