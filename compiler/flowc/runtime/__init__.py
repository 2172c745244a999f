"""The runtime side of flowc: what runs a node's data path, and the client API actors use.

An actor started by the launcher finds its channels through the ``FLOWC_CHANNELS`` environment
variable (JSON: ``{"inputs": {channel: {"ring": name, "index": i}}, "outputs": {...}}``). Python actors
use :func:`inputs` and :func:`outputs`; a ``run:`` callable receives them as arguments. The launcher
stops producers with SIGTERM, which sets :func:`stopping`; consumers and transformers see their inputs
drain and ``recv()`` return ``None``.
"""

from __future__ import annotations

import json
import os
import signal
from typing import Any

CHANNELS_ENV = "FLOWC_CHANNELS"
_stop = False


def _on_term(_signum: int, _frame: Any) -> None:
    global _stop
    _stop = True


def install_stop_handler() -> None:
    """Make SIGTERM and SIGINT set :func:`stopping` instead of killing the process."""
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, _on_term)


def stopping() -> bool:
    """Whether the launcher asked this actor to stop (producers poll this between messages)."""
    return _stop


def _io() -> tuple[dict[str, Any], dict[str, Any]]:
    from flowc.runtime.endpoints import attach

    return attach(json.loads(os.environ.get(CHANNELS_ENV, "{}")))


def inputs() -> dict[str, Any]:
    """Attach this actor's input channels: channel name → :class:`~flowc.runtime.endpoints.Input`."""
    return _io()[0]


def outputs() -> dict[str, Any]:
    """Attach this actor's output channels: channel name → :class:`~flowc.runtime.endpoints.Output`."""
    return _io()[1]
