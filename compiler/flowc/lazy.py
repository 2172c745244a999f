"""Load a function by name on first use, so a command imports only the stages and targets it runs.

``flowc check`` never pays for networkx, jinja2 or an emitter: the driver and the target registry name what they
run as ``"module:attribute"`` and :func:`load` imports it when it is first called.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any


@functools.cache
def load(reference: str) -> Any:
    """Import ``module:attribute`` and return the attribute.

    Args:
        reference: ``"package.module:attribute"``.

    Returns:
        The attribute.

    Example:
        >>> load("flowc.model.units:parse_size")("1KiB")
        1024
    """
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)
