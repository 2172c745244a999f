"""Pass ``substitute``: Document → Document with ``${VAR}``, ``${VAR:-default}`` and ``${VAR-default}`` replaced.

Values come from the context's environment, with the shell's semantics: ``${VAR:-default}`` uses the default
when ``VAR`` is unset or empty, ``${VAR-default}`` only when it is unset. ``$$`` writes a literal ``$``. A
plain (unquoted) scalar is re-typed after substitution (``num_instances: ${N}`` with ``N=4`` becomes the
integer 4), so variables can fill numeric and boolean fields. Emits FLC110 (undefined variable), FLC111
(malformed reference) and FLC112 (a substituted integer too long to read).
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from flowc.model.context import Context
from flowc.model.document import Document, Path

_REF = re.compile(r"\$\$|\$\{([^}]*)\}|\$\{")
_DEFAULT = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<sep>:?-)(?P<default>[\s\S]*))?\Z")
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
    if not _may_refer(doc.data):
        return doc
    walker = _Walker(doc, ctx)
    data = walker.walk(doc.data, ())
    if not walker.changed:
        return doc
    return doc.replace_data(data, frozenset(doc.plain - walker.retyped))


def _may_refer(data: Any) -> bool:
    """Whether any text in ``data`` has a ``$`` (a reference can only be there): one pass of the C JSON encoder."""
    try:
        return "$" in json.dumps(data, ensure_ascii=False, check_circular=False)
    except (TypeError, ValueError):
        return True  # not JSON (cannot happen after parsing): walk it


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
            match_name = _DEFAULT.match(body)
            if match_name is None:
                self.fail_malformed(text, path)
                return ""
            name, sep, default = match_name.group("name", "sep", "default")
            value = self.ctx.environ.get(name)
            if value is not None and not (sep == ":-" and value == ""):
                return value
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
            if _INT.match(result) and len(result) > sys.get_int_max_str_digits():
                self.ctx.error("FLC112", f"the substituted integer has {len(result)} characters; flowc reads at "
                               f"most {sys.get_int_max_str_digits()} digits", at=self.doc.span(path),
                               help="check the variable's value; quote the reference to keep it a string")
                return None
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
