"""Pass ``parse``: source text → :class:`~flowc.model.document.Document` (plain data with spans).

Emits FLC101 (syntax), FLC102 (size cap), FLC103 (empty), FLC104 (duplicate key),
FLC105 (aliases and merge keys, refused so that no small file can expand into a huge one),
FLC106 (several documents), FLC108 (explicit tags), FLC109 (unpaired surrogates) and FLC112 (a plain
scalar that looks like a date, time or number but is not a valid one, such as ``2020-02-30``).

An ordinary document is read by the fast path (:mod:`flowc.passes.parse_fast`, libyaml); anything else, and every
diagnostic above but FLC102, comes from the reference parser (:mod:`flowc.passes.parse_ruamel`, ruamel.yaml),
which is imported only when a document needs it.
"""

from __future__ import annotations

from flowc.diagnostics import Span
from flowc.model.context import Context
from flowc.model.document import Document
from flowc.passes.parse_fast import parse_fast

MAX_BYTES = 4 * 1024 * 1024


def parse(text: str, ctx: Context) -> Document:
    r"""Parse one YAML document, keeping the position of every key and value.

    Args:
        text: The file's contents.
        ctx: The compilation context (its ``path`` names the file in diagnostics).

    Returns:
        The document; when errors were reported its data is ``None``.

    Example:
        >>> ctx = Context("t.yaml")
        >>> doc = parse("name: x\nnum_instances: 2\n", ctx)
        >>> doc.data, doc.span(("num_instances",)).line
        ({'name': 'x', 'num_instances': 2}, 2)
    """
    start = Span(ctx.path, 1, 1)
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        ctx.error("FLC102", f"input is larger than {MAX_BYTES // (1024 * 1024)} MiB", at=start,
                  help="split the topology into several files")
        return Document(ctx.path, None)
    fast = parse_fast(text, ctx.path)
    if fast is not None:
        return fast
    return parse_reference(text, ctx)


def parse_reference(text: str, ctx: Context) -> Document:
    r"""Parse with ruamel.yaml: the meaning of every document and the source of every diagnostic about its text.

    Args:
        text: The file's contents, within the size cap.
        ctx: The compilation context.

    Returns:
        The document; when errors were reported its data is ``None``.

    Example:
        >>> ctx = Context("t.yaml")
        >>> parse_reference("when: 2024-01-01\n", ctx).data  # a date: only the reference parser types it
        {'when': '2024-01-01'}
    """
    from flowc.passes import parse_ruamel  # ruamel.yaml loads here, for the documents the fast path leaves

    return parse_ruamel.parse_reference(text, ctx)
