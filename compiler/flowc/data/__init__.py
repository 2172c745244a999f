"""The files flowc ships beside its code: this folder's data (the instance catalog), ``schemas/`` and ``templates/``.

In a wheel ``schemas`` and ``templates`` sit inside the package (``flowc/schemas``); in a source checkout they sit
at the repository's top level. Both layouts are looked up here and nowhere else.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parent
_PACKAGE = DATA_DIR.parent


def resource_dir(name: str) -> Path:
    """Return the directory of a shipped resource folder.

    Args:
        name: ``"schemas"`` or ``"templates"``.

    Returns:
        The folder inside the installed package, or the checkout's top-level folder.

    Raises:
        FileNotFoundError: When neither exists (a broken installation).
    """
    for candidate in (_PACKAGE / name, _PACKAGE.parent.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"flowc resource folder '{name}' is missing from the installation")


@functools.cache
def schema() -> dict[str, Any]:
    """Return flowc's JSON Schema (Draft 2020-12), the single source of truth for the input language.

    Example:
        >>> schema()["$schema"]
        'https://json-schema.org/draft/2020-12/schema'
    """
    return json.loads((resource_dir("schemas") / "flowc.schema.json").read_text(encoding="utf-8"))
