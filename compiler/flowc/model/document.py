"""The parsed document: plain data plus the source span of every key and value in it.

Paths are tuples of mapping keys and sequence indexes, as jsonschema reports them, so any stage can
turn "where in the data" into "where in the file" without touching the YAML library.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from flowc.diagnostics import Span

Path = tuple[str | int, ...]


class Marks(Mapping[Path, Span]):
    """Spans kept as 0-based ``(line, column, width)`` marks and built when asked for.

    A large document has a quarter of a million keys and values; building a :class:`Span` for each up front was
    a tenth of a large build's time, while a compilation asks for a handful of them.

    Example:
        >>> marks = Marks("t.yaml", {("name",): (0, 6, 1)})
        >>> marks[("name",)]
        Span(path='t.yaml', line=1, col=7, end_line=1, end_col=7)
    """

    __slots__ = ("_marks", "_path")

    def __init__(self, path: str, marks: dict[Path, tuple[int, int, int]]) -> None:
        """Keep ``marks`` (path → 0-based line, column and width) of file ``path``."""
        self._path = path
        self._marks = marks

    def __getitem__(self, key: Path) -> Span:
        """Return the span at ``key``."""
        line, col, width = self._marks[key]
        return Span.from_mark(self._path, line, col, width)

    def __iter__(self) -> Iterator[Path]:
        """Iterate over the paths, in document order."""
        return iter(self._marks)

    def __len__(self) -> int:
        """Return how many paths have a span."""
        return len(self._marks)


@dataclass(frozen=True)
class Document:
    """A parsed input file.

    Attributes:
        path: The file name as the user gave it (used verbatim in diagnostics).
        data: The document as plain dicts, lists and scalars.
        value_spans: Span of the value at each path.
        key_spans: Span of the mapping key at each path (for paths that end in a key).
        plain: Paths of unquoted scalars (their text may be re-typed after substitution).
    """

    path: str
    data: Any
    value_spans: Mapping[Path, Span] = field(default_factory=dict)
    key_spans: Mapping[Path, Span] = field(default_factory=dict)
    plain: frozenset[Path] = frozenset()

    def span(self, path: Path) -> Span:
        """Return the span of the value at ``path``, or of its nearest ancestor.

        Args:
            path: Keys and indexes from the root.

        Returns:
            The best span available; the file start when nothing closer is known.
        """
        for end in range(len(path), -1, -1):
            span = self.value_spans.get(path[:end])
            if span is not None:
                return span
        return Span(self.path, 1, 1)

    def key_span(self, path: Path) -> Span:
        """Return the span of the key that ends ``path`` (the value's span if it has no key).

        Args:
            path: Keys and indexes from the root.

        Returns:
            The key's span.
        """
        return self.key_spans.get(path) or self.span(path)

    def replace_data(self, data: Any, plain: frozenset[Path] | None = None) -> Document:
        """Return a copy holding new data at the same spans.

        Args:
            data: The new data (same shape, different scalars).
            plain: New set of plain scalar paths, if it changed.

        Returns:
            The new document.
        """
        return Document(self.path, data, self.value_spans, self.key_spans,
                        self.plain if plain is None else plain)


def lookup(data: Any, path: Path) -> Any:
    """Return the value at ``path`` in plain data, or ``None`` when it is absent.

    Args:
        data: Nested dicts and lists.
        path: Keys and indexes from the root.

    Returns:
        The value, or ``None``.

    Example:
        >>> lookup({"a": [{"b": 2}]}, ("a", 0, "b"))
        2
    """
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data
