"""Pass ``check_schema``: Document → Document, validated against ``schemas/flowc.schema.json``.

Every violation is reported in one run, each at the key or value it concerns. Emits FLC201 (unknown
key, with did-you-mean), FLC202 (type), FLC203 (enum, with did-you-mean), FLC204 (missing key),
FLC205 (range), FLC206 (identifier), FLC207 (hostname), FLC208 (format) and FLC209 (other).
"""

from __future__ import annotations

import functools
import json
import math
from typing import TYPE_CHECKING, Any

from flowc import data
from flowc.diagnostics import Span
from flowc.diagnostics.suggestions import help_for
from flowc.model.context import Context
from flowc.model.document import Document, Path

if TYPE_CHECKING:  # jsonschema is imported only for a document the screen found invalid
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

_TYPE_WORDS = {"object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer",
               "number": "a number", "boolean": "true or false", "null": "empty"}
_RANGE = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}


@functools.cache
def _validator() -> Draft202012Validator:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(data.schema())


@functools.cache
def _screen() -> Any:
    """jsonschema-rs's compiled validator, or ``None`` where it is not installed.

    It only answers "valid or not", about a hundred times faster: a valid document (the usual case) needs
    nothing more, and an invalid one goes through ``jsonschema`` for the diagnostics. Formats are not asserted,
    as ``jsonschema`` does not assert them without a format checker.
    """
    try:
        import jsonschema_rs
    except ImportError:  # pragma: no cover - a dependency; the fallback keeps a source install working
        return None
    return jsonschema_rs.Draft202012Validator(data.schema(), validate_formats=False)


def schema_errors(instance: Any) -> list[ValidationError]:
    """Return every violation of flowc's schema in ``instance`` (none without asking ``jsonschema`` when valid).

    Args:
        instance: The document's data.

    Returns:
        ``jsonschema``'s errors, in its order.
    """
    screen = _screen()
    if screen is not None and screen.is_valid(instance):
        return []
    return list(_validator().iter_errors(instance))


def check_schema(doc: Document, ctx: Context) -> Document:
    """Validate the document's data against flowc's JSON Schema.

    Args:
        doc: The substituted document.
        ctx: The context that collects diagnostics.

    Returns:
        The same document (the pipeline stops here when it has errors).

    Example:
        >>> ctx = Context("t.yaml")
        >>> _ = check_schema(Document("t.yaml", {"name": "x", "instance_type": "a100", "topology": "sprad"}), ctx)
        >>> [(d.code, d.help) for d in ctx.diagnostics]
        [('FLC203', "did you mean 'spread'?")]
    """
    reporter = _Reporter(doc, ctx)
    for error in schema_errors(doc.data):
        reporter.report(error)
    odd_numbers = _numbers_need_a_look(doc.data)
    for path in _non_finite(doc.data, ()) if odd_numbers else ():
        ctx.error("FLC205", f"{_quoted(path)} is not a finite number", at=doc.span(path),
                  help="write a plain number; .nan and .inf are not allowed")
    for path in _beyond_64_bits(doc.data, ()) if odd_numbers else ():
        ctx.error("FLC205", f"{_quoted(path)} is a number of more than 64 bits", at=doc.span(path),
                  help=f"no flowc field takes a number beyond ±{_INT64_MAX}; check the value")
    data = doc.data
    if isinstance(data, dict) and not ctx.has_errors and not any(
            data.get(key) for key in ("instance_type", "tasks", "actors", "nodes")):
        ctx.error("FLC210", "the document declares no task and no actor topology", at=doc.span(()),
                  help="add 'name' and 'instance_type' for a task, or 'actors' and 'nodes' for a data path")
    return doc


_INT64_MAX = (1 << 63) - 1


def _numbers_need_a_look(data: Any) -> bool:
    """Whether the walks for non-finite floats and over-large integers must run.

    Two passes of compiled encoders answer for ordinary data: ``json`` refuses a non-finite float, and orjson an
    integer beyond 53 bits (stricter than needed: the walk then decides). Anything either cannot encode is walked.
    """
    try:
        import orjson
    except ImportError:  # pragma: no cover - a dependency; without it the walks always run
        return True
    try:
        json.dumps(data, allow_nan=False, check_circular=False)
        orjson.dumps(data, option=orjson.OPT_STRICT_INTEGER)
    except (TypeError, ValueError, orjson.JSONEncodeError):
        return True
    return False


def _beyond_64_bits(value: Any, path: Path) -> list[Path]:
    """Integers no field can hold: later stages turn numbers into C integers, floats and JSON."""
    if isinstance(value, int) and not isinstance(value, bool):
        return [path] if abs(value) > _INT64_MAX else []
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in _beyond_64_bits(item, (*path, key))]
    if isinstance(value, list):
        return [p for index, item in enumerate(value) for p in _beyond_64_bits(item, (*path, index))]
    return []


def _non_finite(value: Any, path: Path) -> list[Path]:
    if isinstance(value, float):
        return [] if math.isfinite(value) else [path]
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in _non_finite(item, (*path, key))]
    if isinstance(value, list):
        return [p for index, item in enumerate(value) for p in _non_finite(item, (*path, index))]
    return []


def _name(path: Path) -> str:
    """Name the field at ``path`` the way the user wrote it (``inputs[1]`` for list items)."""
    for index in range(len(path) - 1, -1, -1):
        if isinstance(path[index], str):
            rest = "".join(f"[{part}]" for part in path[index + 1:])
            return f"{path[index]}{rest}"
    return "the document"


def _quoted(path: Path) -> str:
    name = _name(path)
    return name if name == "the document" else _show(name)


class _Reporter:
    """Turns jsonschema errors into flowc diagnostics."""

    def __init__(self, doc: Document, ctx: Context) -> None:
        self.doc = doc
        self.ctx = ctx
        self.seen: set[tuple[str, Span, str]] = set()

    def emit(self, code: str, message: str, span: Span, help: str | None = None) -> None:
        if (code, span, message) in self.seen:
            return
        self.seen.add((code, span, message))
        self.ctx.error(code, message, at=span, help=help)

    def report(self, error: ValidationError) -> None:
        path: Path = tuple(error.absolute_path)
        handler = getattr(self, f"on_{error.validator}", None)
        if "propertyNames" in error.absolute_schema_path:
            self.on_property_name(error, path)
        elif handler is not None:
            handler(error, path)
        else:
            self.emit("FLC209", f"{_quoted(path)} is invalid: {error.message}", self.doc.span(path))

    def on_oneOf(self, error: ValidationError, path: Path) -> None:  # noqa: N802 - jsonschema keyword
        branches: dict[int, list[ValidationError]] = {}
        for sub in error.context or ():
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        wrong_type = [b for b in branches.values() if _is_type_miss(b, path)]
        plausible = [b for b in branches.values() if not _is_type_miss(b, path)]
        if len(plausible) == 1:
            for sub in plausible[0]:
                self.report(sub)
            return
        if not plausible and wrong_type:
            kinds = []
            for branch in wrong_type:
                for sub in branch:
                    kinds.extend(_types_of(sub))
            expected = " or ".join(dict.fromkeys(_TYPE_WORDS.get(k, k) for k in kinds))
            self.emit("FLC202", f"{_quoted(path)} must be {expected}, not {_describe(error.instance)}",
                      self.doc.span(path))
            return
        if error.validator_value and all("required" in s for s in error.validator_value):
            keys = [s["required"][0] for s in error.validator_value]
            given = [k for k in keys if isinstance(error.instance, dict) and k in error.instance]
            names = " or ".join(f"'{k}'" for k in keys)
            if len(given) > 1:
                self.emit("FLC209", f"{_quoted(path)} sets both " + " and ".join(f"'{k}'" for k in given),
                          self.doc.span(path), f"keep only one of {names}")
            else:
                self.emit("FLC204", f"{_quoted(path)} needs {names}", self.doc.span(path), f"add one of {names}")
            return
        self.emit("FLC209", f"{_quoted(path)} is invalid: {error.message}", self.doc.span(path))

    def on_additionalProperties(self, error: ValidationError, path: Path) -> None:  # noqa: N802
        known = list(error.schema.get("properties", {}))
        for key in error.instance:
            if key not in known:
                where = f" in {_quoted(path)}" if path else ""
                self.emit("FLC201", f"unknown key '{key}'{where}", self.doc.key_span((*path, key)),
                          help_for(key, known, "one of"))

    def on_type(self, error: ValidationError, path: Path) -> None:
        expected = " or ".join(_TYPE_WORDS.get(k, k) for k in _types_of(error))
        if not path:
            self.emit("FLC202", f"the document must be {expected}, not {_describe(error.instance)}",
                      self.doc.span(path), "write 'key: value' entries at the top level")
            return
        self.emit("FLC202", f"{_quoted(path)} must be {expected}, not {_describe(error.instance)}",
                  self.doc.span(path))

    def on_enum(self, error: ValidationError, path: Path) -> None:
        allowed = [str(v) for v in error.validator_value]
        self.emit("FLC203", f"unknown {_quoted(path)} value {_show(error.instance)}", self.doc.span(path),
                  help_for(str(error.instance), allowed))

    def on_required(self, error: ValidationError, path: Path) -> None:
        for key in error.validator_value:
            if isinstance(error.instance, dict) and key not in error.instance:
                owner = f" in {_quoted(path)}" if path else ""
                self.emit("FLC204", f"missing required key '{key}'{owner}", self.doc.key_span(path),
                          f"add '{key}: ...'")

    def on_dependentRequired(self, error: ValidationError, path: Path) -> None:  # noqa: N802
        reported: set[str] = set()
        for trigger, needed in error.validator_value.items():
            for key in needed:
                if trigger in error.instance and key not in error.instance and key not in reported:
                    reported.add(key)
                    self.emit("FLC204", f"missing required key '{key}' (a task document with "
                              f"'{trigger}' also needs '{key}')", self.doc.key_span((*path, trigger)),
                              f"add '{key}: ...', or move the task under 'tasks:'")

    def on_pattern(self, error: ValidationError, path: Path) -> None:
        self._on_bad_text(error, path, error.instance)

    def on_property_name(self, error: ValidationError, path: Path) -> None:
        key = str(error.instance)
        if path and path[-1] == "env":
            self.emit("FLC208", f"invalid environment variable name {_show(key)}", self.doc.key_span((*path, key)),
                      "names are letters, digits and '_', not starting with a digit")
            return
        self._on_bad_text(error, (*path, key), key, key_span=True)

    def _on_bad_text(self, error: ValidationError, path: Path, text: Any, key_span: bool = False) -> None:
        span = self.doc.key_span(path) if key_span else self.doc.span(path)
        defs = data.schema()["$defs"]
        if error.schema.get("pattern") == defs["identifier"]["pattern"]:
            self.emit("FLC206", f"invalid name {_show(text)}", span,
                      "names are lowercase letters, digits, '_' and '-', starting with a letter and ending "
                      "with a letter or digit")
        elif error.schema.get("pattern") == defs["hostname"]["pattern"]:
            self.emit("FLC207", f"invalid hostname {_show(text)}", span,
                      "a hostname is dot-separated labels of letters, digits and '-' (RFC 1123)")
        elif error.validator == "maxLength":
            self.on_maxLength(error, path)
        else:
            what = error.schema.get("description") or _hint(path)
            self.emit("FLC208", f"invalid {_quoted(path)} value {_show(text)}", span, what)

    def on_uniqueItems(self, error: ValidationError, path: Path) -> None:  # noqa: N802
        seen: set[str] = set()
        for index, item in enumerate(error.instance):
            key = repr(item)
            if key in seen:
                self.emit("FLC208", f"{_show(item)} is listed twice in {_quoted(path)}",
                          self.doc.span((*path, index)), "remove the repeated item")
            seen.add(key)

    def _range(self, error: ValidationError, path: Path) -> None:
        op = _RANGE[error.validator]
        self.emit("FLC205", f"{_quoted(path)} is {_show(error.instance)}, it must be {op} "
                  f"{error.validator_value}", self.doc.span(path))

    on_minimum = on_maximum = on_exclusiveMinimum = on_exclusiveMaximum = _range  # noqa: N815

    def _size(self, error: ValidationError, path: Path) -> None:
        limit = error.validator_value
        bound = "at least" if error.validator.startswith("min") else "at most"
        unit = {"Items": "item", "Length": "character", "Properties": "entry"}[
            error.validator.removeprefix("min").removeprefix("max")]
        self.emit("FLC205", f"{_quoted(path)} must have {bound} {limit} {unit}{'s' if limit != 1 else ''}",
                  self.doc.span(path))

    on_minItems = on_maxItems = on_minLength = on_maxLength = on_minProperties = _size  # noqa: N815

    def on_not(self, error: ValidationError, path: Path) -> None:
        self.emit("FLC208", f"invalid {_quoted(path)} value {_show(error.instance)}", self.doc.span(path),
                  "'..' is not allowed in a path")


def _is_type_miss(branch: list[ValidationError], path: Path) -> bool:
    return any(e.validator in ("type", "enum") and tuple(e.absolute_path) == path
               and (e.validator == "type" or not isinstance(e.instance, str)) for e in branch)


def _types_of(error: ValidationError) -> list[str]:
    if error.validator == "enum":
        return ["string"]
    value = error.validator_value if error.validator == "type" else error.schema.get("type", [])
    return [value] if isinstance(value, str) else list(value)


def _describe(value: Any) -> str:
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "a boolean"
    return {dict: "a mapping", list: "a list", str: "a string", int: "an integer",
            float: "a number"}.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    if isinstance(value, str):
        # A control character (a trailing newline, a tab) would break the diagnostic's one-line shape.
        text = value if value.isprintable() else value.encode("unicode_escape").decode("ascii")
        return f"'{text}'"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _INT64_MAX:
        return f"a {len(str(value))}-digit number"
    return str(value).lower() if isinstance(value, bool) else str(value)


def _hint(path: Path) -> str | None:
    field = next((p for p in reversed(path) if isinstance(p, str)), "")
    return {
        "cpu": "write cpus as a list [0, 1] or a cpuset string such as '0-3,8'",
        "buffer_size": "write bytes as an integer, or a size such as '64MB', '64MiB', '512KiB'",
        "source": "write the route source as 'node.channel'",
        "instance_type": "write a flow short name like '8xh100' or a Mithril name like 'h100-80gb.sxm.8x'",
        "region": "write a region such as 'us-central1-b'",
        "image": "write an image reference without spaces or shell characters",
        "mount_path": "write an absolute path such as '/volumes/data'",
    }.get(field)
